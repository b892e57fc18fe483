import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { ownerOf, seesTenant } from '../owner.js'
import { scopedTenant } from '../scope.js'
import type { MemoryPut, MemoryRecord, MemorySearch, MemoryStore, NamespaceQuery } from '../types.js'
import {
  bad,
  checkInt,
  checkNamespace,
  checkText,
  checkTtl,
  checkValue,
  decodeNamespace,
  ESC,
  isPlainObject,
  MAX_FILTER_FIELDS,
  MAX_IN_VALUES,
  MAX_KEY_CHARS,
  MAX_LABEL_CHARS,
  MAX_LABELS,
  MAX_LIMIT,
  TERM,
} from '../rows/memory.js'
import type { Db } from './db.js'

/*
 * Long-term memory on PostgreSQL, with the SQLite store's semantics and messages.
 *
 * Namespaces use the SQLite store's encoding (each label followed by U+0001, with U+0000–U+0002
 * escaped), in a "C"-collated column: prefixes are index ranges and binary order is label order.
 * PostgreSQL text cannot hold U+0000, which the encoding never produces; keys and owners, which
 * may contain any character, are escaped the same way (order-preserving) before they are stored.
 *
 * Values are a `json` column (kept verbatim, key order included, and able to hold "\u0000",
 * which `jsonb` refuses). Filters read a field with `value -> $field` and compare:
 *  - exact values by their JSON text, which both sides got from JSON.stringify: type-strict, and
 *    objects and arrays with their key order, as in SQLite;
 *  - numbers as `numeric` (a JSON number's text casts exactly);
 *  - strings by code point (`COLLATE "C"` on the decoded string). A stored string holding an
 *    escape PostgreSQL cannot decode to text (U+0000 or a lone surrogate) never satisfies a range
 *    operator instead of failing the whole query.
 */

/** U+0000–U+0002 → U+0002 followed by '0'–'2': no U+0000 in the column, and order is kept. */
function encodeKey(key: string): string {
  let out = ''
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    out += code <= 2 ? ESC + String.fromCharCode(0x30 + code) : key[i]
  }
  return out
}

function decodeKey(stored: string): string {
  let out = ''
  for (let i = 0; i < stored.length; i++) {
    if (stored[i] === ESC) out += String.fromCharCode(stored.charCodeAt(++i) - 0x30)
    else out += stored[i]
  }
  return out
}

const checkKey = (key: unknown): string => encodeKey(checkText('key', key, MAX_KEY_CHARS))

const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in'] as const
type Operator = (typeof OPERATORS)[number]
const RANGE_SQL: Partial<Record<Operator, string>> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }
/** A JSON string text with an escape that PostgreSQL cannot turn into text (an odd run of backslashes before it). */
const UNDECODABLE = String.raw`(^|[^\\])(\\\\)*\\u(0000|[dD][89abcdefABCDEF])`

/** Positional parameters of one statement. */
class Params {
  readonly values: unknown[] = []
  add(v: unknown): string {
    this.values.push(v)
    return `$${this.values.length}`
  }
}

/** A predicate on the field's JSON `f` (never NULL: the caller checks presence) for "equals v". */
function equals(where: string, v: unknown, f: string, p: Params): string {
  if (v === null) return `json_typeof(${f}) = 'null'`
  switch (typeof v) {
    case 'boolean':
      return `(json_typeof(${f}) = 'boolean' AND ${f}::text = ${p.add(String(v))})`
    case 'number':
      if (!Number.isFinite(v)) throw bad(`filter ${where}: ${v} is not a JSON number`)
      return `(CASE WHEN json_typeof(${f}) = 'number' THEN ${f}::text::numeric = ${p.add(String(v))}::numeric ELSE false END)`
    case 'string':
      return `(json_typeof(${f}) = 'string' AND ${f}::text = ${p.add(JSON.stringify(v))})`
    case 'object': {
      let json: string | undefined
      try {
        json = JSON.stringify(v)
      } catch {
        json = undefined
      }
      if (json === undefined) throw bad(`filter ${where}: not a JSON value`)
      return `(json_typeof(${f}) IN ('object', 'array') AND ${f}::text = ${p.add(json)})`
    }
    default:
      throw bad(`filter ${where}: ${typeof v} is not a JSON value`)
  }
}

/** `pred` over the field `field` of the row's value; false (or true, negated) when the field is missing. */
function onField(field: string, p: Params, build: (f: string) => string, negate = false): string {
  // A name PostgreSQL text cannot hold (U+0000) cannot be looked up: no item has that field here.
  if (field.includes('\u0000')) return negate ? 'true' : 'false'
  const f = `(store_items.value -> ${p.add(field)}::text)`
  const holds = `COALESCE(${f} IS NOT NULL AND ${build(f)}, false)`
  return negate ? `NOT ${holds}` : holds
}

function compileFilter(filter: unknown, p: Params): string[] {
  if (filter === undefined) return []
  if (!isPlainObject(filter)) throw bad('filter must be an object of field conditions')
  const fields = Object.entries(filter)
  if (fields.length > MAX_FILTER_FIELDS)
    throw bad(`filter has ${fields.length} fields; at most ${MAX_FILTER_FIELDS} are allowed`)
  const out: string[] = []
  for (const [field, cond] of fields) {
    checkText('filter field name', field, MAX_LABEL_CHARS)
    const where = `field "${field}"`
    const opKeys = isPlainObject(cond) ? Object.keys(cond).filter((k) => k.startsWith('$')) : []
    if (opKeys.length === 0) {
      out.push(onField(field, p, (f) => equals(where, cond, f, p)))
      continue
    }
    const ops = cond as Record<string, unknown>
    if (opKeys.length !== Object.keys(ops).length)
      throw bad(`filter ${where} mixes operators ($...) with plain keys`)
    for (const op of opKeys) {
      const arg = ops[op]
      if (!(OPERATORS as readonly string[]).includes(op))
        throw bad(`filter ${where}: unknown operator ${op} (supported: ${OPERATORS.join(', ')})`)
      if (op === '$eq') out.push(onField(field, p, (f) => equals(where, arg, f, p)))
      else if (op === '$ne') out.push(onField(field, p, (f) => equals(where, arg, f, p), true))
      else if (op === '$in') {
        if (!Array.isArray(arg)) throw bad(`filter ${where}: $in needs an array of values`)
        if (arg.length > MAX_IN_VALUES)
          throw bad(`filter ${where}: $in has ${arg.length} values; at most ${MAX_IN_VALUES} are allowed`)
        if (arg.length === 0) {
          out.push('false')
          continue
        }
        out.push(onField(field, p, (f) => `(${arg.map((a) => equals(where, a, f, p)).join(' OR ')})`))
      } else {
        const cmp = RANGE_SQL[op as Operator]!
        if (typeof arg === 'number' && Number.isFinite(arg)) {
          out.push(
            onField(
              field,
              p,
              (f) =>
                `(CASE WHEN json_typeof(${f}) = 'number' THEN ${f}::text::numeric ${cmp} ${p.add(String(arg))}::numeric ELSE false END)`,
            ),
          )
        } else if (typeof arg === 'string') {
          // U+0000 cannot be a PostgreSQL text parameter. Comparable stored strings never hold it
          // (see UNDECODABLE), so against `c`, the operand cut before its first U+0000, a stored
          // string is greater than the operand exactly when it is greater than `c`, and smaller
          // exactly when it is at most `c`.
          const nul = arg.indexOf('\u0000')
          const operand = nul === -1 ? arg : arg.slice(0, nul)
          const op2 = nul === -1 ? cmp : cmp.startsWith('>') ? '>' : '<='
          out.push(
            onField(
              field,
              p,
              (f) =>
                `(CASE WHEN json_typeof(${f}) = 'string' AND ${f}::text !~ ${p.add(UNDECODABLE)}
                   THEN (${f} #>> '{}') COLLATE "C" ${op2} ${p.add(operand)}::text COLLATE "C" ELSE false END)`,
            ),
          )
        } else throw bad(`filter ${where}: ${op} needs a number or a string`)
      }
    }
  }
  return out
}

interface Row {
  owner: string
  namespace: string
  key: string
  value: Record<string, unknown>
  created_at: string
  updated_at: string
  expires_at: string | null
}

/** `withOwner`: callers who may see other principals' items (admins, auditors, operators) are told whose an item is. */
const toRecord = (r: Row, withOwner = false): MemoryRecord => ({
  ...(withOwner ? { owner: decodeKey(r.owner) } : {}),
  namespace: decodeNamespace(r.namespace),
  key: decodeKey(r.key),
  value: r.value,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  ...(r.expires_at ? { expiresAt: r.expires_at } : {}),
})

const COLUMNS = 'owner, namespace, key, value, created_at, updated_at, expires_at'

/** Conditions selecting a namespace prefix: none for [], else an index range. */
function prefixRange(encoded: string, p: Params): string {
  if (!encoded) return ''
  return ` AND namespace >= ${p.add(encoded)} AND namespace < ${p.add(encoded.slice(0, -1) + ESC)}`
}

/** Nobody's items: what a member naming another owner reaches (as in the SQLite store). */
const NOBODY = '\u0000'

/**
 * Whose items a call touches. Everyone's own by default; admins, auditors and operators may name
 * another owner of their tenant (`owner`), and their reads without one span every owner (`all`).
 * A member naming someone else gets nothing, exactly as if the item did not exist.
 */
function ownerScope(ctx: CallContext, requested: unknown): { own: string; owner?: string; all: boolean } {
  const own = ownerOf(ctx)
  if (requested !== undefined && typeof requested !== 'string') throw bad('owner must be a string')
  if (!seesTenant(ctx))
    return { own, owner: requested === undefined || requested === own ? own : NOBODY, all: false }
  return requested === undefined ? { own, all: true } : { own, owner: requested, all: false }
}

/** The owner condition of a read: none when it spans every owner. */
function ownerFilter(scope: { owner?: string; all: boolean }, p: Params): string {
  return scope.all ? '' : ` AND owner = ${p.add(encodeKey(scope.owner!))}`
}

const live = (p: Params, nowIso: string) => `(expires_at IS NULL OR expires_at > ${p.add(nowIso)})`

/**
 * The `store_items` table. Time comes from Date.now() (never the database clock), so one clock
 * decides expiry for writes, reads and the sweeper, as in the SQLite store.
 */
export class PgMemory implements MemoryStore {
  constructor(private readonly db: Db) {}

  async put(ctx: CallContext, item: MemoryPut): Promise<MemoryRecord> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(item)) throw bad('put needs { namespace, key, value }')
    const scope = ownerScope(ctx, item.owner)
    const owner = scope.owner ?? scope.own
    if (owner === NOBODY) throw new GatewayError('not_found', 'not found')
    const ns = checkNamespace('namespace', item.namespace, 1)
    const key = checkKey(item.key)
    const value = checkValue(item.value)
    const ttl = checkTtl(item.ttlSeconds)
    const nowMs = Date.now()
    const now = new Date(nowMs).toISOString()
    const expires = ttl === undefined ? null : new Date(nowMs + ttl * 1000).toISOString()
    // Replacing an item that has already expired (not yet swept) creates a new one.
    const row = await this.db.one<Row>(
      `INSERT INTO store_items AS s (tenant, owner, namespace, key, value, created_at, updated_at, expires_at)
       VALUES ($1, $2, $3, $4, $5::json, $6, $6, $7)
       ON CONFLICT (tenant, owner, namespace, key) DO UPDATE SET
         value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
         created_at = CASE WHEN s.expires_at IS NOT NULL AND s.expires_at <= excluded.updated_at
                           THEN excluded.created_at ELSE s.created_at END
       RETURNING ${COLUMNS}`,
      [tenant, encodeKey(owner), ns, key, value, now, expires],
    )
    return toRecord(row!, seesTenant(ctx))
  }

  /**
   * The caller's own item; `opts.owner` names another owner's (admins, auditors, operators). Those
   * callers, when they have no item of their own there, get the newest item any owner has.
   */
  async get(
    ctx: CallContext,
    namespace: string[],
    key: string,
    opts: { owner?: string } = {},
  ): Promise<MemoryRecord | undefined> {
    const tenant = scopedTenant(ctx)
    const ns = checkNamespace('namespace', namespace, 1)
    const k = checkKey(key)
    const scope = ownerScope(ctx, opts.owner)
    const p = new Params()
    const where = `tenant = ${p.add(tenant)}${ownerFilter(scope, p)} AND namespace = ${p.add(ns)}
      AND key = ${p.add(k)} AND ${live(p, new Date().toISOString())}`
    const row = await this.db.one<Row>(
      scope.all
        ? `SELECT ${COLUMNS} FROM store_items WHERE ${where}
            ORDER BY owner = ${p.add(encodeKey(scope.own))} DESC, updated_at DESC LIMIT 1`
        : `SELECT ${COLUMNS} FROM store_items WHERE ${where}`,
      p.values,
    )
    return row ? toRecord(row, seesTenant(ctx)) : undefined
  }

  async search(ctx: CallContext, query: MemorySearch): Promise<MemoryRecord[]> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(query)) throw bad('search needs { namespacePrefix }')
    const p = new Params()
    const scope = ownerScope(ctx, query.owner)
    const where = `tenant = ${p.add(tenant)}${ownerFilter(scope, p)}${prefixRange(
      checkNamespace('namespace prefix', query.namespacePrefix ?? [], 0),
      p,
    )} AND ${live(p, new Date().toISOString())}`
    const filters = compileFilter(query.filter, p)
    const limit = checkInt('limit', query.limit, 1, MAX_LIMIT, 10)
    const offset = checkInt('offset', query.offset, 0, Number.MAX_SAFE_INTEGER, 0)
    const rows = await this.db.rows<Row>(
      `SELECT ${COLUMNS} FROM store_items WHERE ${where}${filters.map((f) => ` AND ${f}`).join('')}
        ORDER BY updated_at DESC, namespace, key, owner LIMIT ${p.add(limit)} OFFSET ${p.add(offset)}`,
      p.values,
    )
    return rows.map((r) => toRecord(r, seesTenant(ctx)))
  }

  /** The caller's own item, or (admins, operators) the item of `opts.owner`. */
  async delete(
    ctx: CallContext,
    namespace: string[],
    key: string,
    opts: { owner?: string } = {},
  ): Promise<boolean> {
    const tenant = scopedTenant(ctx)
    const ns = checkNamespace('namespace', namespace, 1)
    const k = checkKey(key)
    const scope = ownerScope(ctx, opts.owner)
    const row = await this.db.one<{ expires_at: string | null }>(
      'DELETE FROM store_items WHERE tenant = $1 AND owner = $2 AND namespace = $3 AND key = $4 RETURNING expires_at',
      [tenant, encodeKey(scope.owner ?? scope.own), ns, k],
    )
    // An expired row is removed too, but it was already gone as far as the caller could see.
    return row !== undefined && (row.expires_at === null || row.expires_at > new Date().toISOString())
  }

  async listNamespaces(ctx: CallContext, query: NamespaceQuery = {}): Promise<string[][]> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(query)) throw bad('listNamespaces needs an object')
    const p = new Params()
    const owner = ownerFilter(ownerScope(ctx, query.owner), p)
    const range = prefixRange(checkNamespace('namespace prefix', query.prefix ?? [], 0), p)
    const depth = checkInt('max depth', query.maxDepth, 1, MAX_LABELS, 0)
    const limit = checkInt('limit', query.limit, 1, MAX_LIMIT, 100)
    const offset = checkInt('offset', query.offset, 0, Number.MAX_SAFE_INTEGER, 0)
    // The first `depth` labels: the longest match of up to `depth` terminated labels.
    const ns = depth
      ? `substring(namespace from ${p.add(`^(?:[^${TERM}]*${TERM}){1,${depth}}`)})`
      : 'namespace'
    const rows = await this.db.rows<{ ns: string }>(
      `SELECT DISTINCT ${ns} COLLATE "C" AS ns FROM store_items
        WHERE tenant = ${p.add(tenant)}${owner}${range} AND ${live(p, new Date().toISOString())}
        ORDER BY ns LIMIT ${p.add(limit)} OFFSET ${p.add(offset)}`,
      p.values,
    )
    return rows.map((r) => decodeNamespace(r.ns))
  }

  async sweepExpired(nowMs: number = Date.now()): Promise<number> {
    return this.db.count('DELETE FROM store_items WHERE expires_at IS NOT NULL AND expires_at <= $1', [
      new Date(nowMs).toISOString(),
    ])
  }
}
