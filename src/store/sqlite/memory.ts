import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { ownerOf, seesTenant } from '../owner.js'
import { scopedTenant } from '../scope.js'
import type { MemoryPut, MemoryRecord, MemorySearch, MemoryStore, NamespaceQuery } from '../types.js'
import {
  MAX_LABELS,
  MAX_LABEL_CHARS,
  MAX_KEY_CHARS,
  MAX_LIMIT,
  MAX_FILTER_FIELDS,
  MAX_IN_VALUES,
  ESC,
  decodeNamespace,
  truncateEncoded,
  bad,
  checkText,
  checkNamespace,
  isPlainObject,
  checkValue,
  checkInt,
  checkTtl,
} from '../rows/memory.js'

const checkKey = (key: unknown): string => checkText('key', key, MAX_KEY_CHARS)
interface Fragment {
  sql: string
  args: unknown[]
}

const OPERATORS = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in'] as const
type Operator = (typeof OPERATORS)[number]
const RANGE_SQL: Partial<Record<Operator, string>> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' }

/** A predicate on the json_each row `j` for "the field equals v". */
function equals(where: string, v: unknown): Fragment {
  if (v === null) return { sql: `j.type = 'null'`, args: [] }
  switch (typeof v) {
    case 'boolean':
      return { sql: v ? `j.type = 'true'` : `j.type = 'false'`, args: [] }
    case 'number':
      if (!Number.isFinite(v)) throw bad(`filter ${where}: ${v} is not a JSON number`)
      return { sql: `j.type IN ('integer', 'real') AND j.atom = ?`, args: [v] }
    case 'string':
      return { sql: `j.type = 'text' AND j.atom = ?`, args: [v] }
    case 'object': {
      let json: string | undefined
      try {
        json = JSON.stringify(v)
      } catch {
        json = undefined
      }
      if (json === undefined) throw bad(`filter ${where}: not a JSON value`)
      return { sql: `j.type IN ('object', 'array') AND j.value = json(?)`, args: [json] }
    }
    default:
      throw bad(`filter ${where}: ${typeof v} is not a JSON value`)
  }
}

function onField(field: string, pred: Fragment, negate = false): Fragment {
  return {
    sql: `${negate ? 'NOT ' : ''}EXISTS (SELECT 1 FROM json_each(store_items.value) AS j WHERE j.key = ? AND (${pred.sql}))`,
    args: [field, ...pred.args],
  }
}

function compileFilter(filter: unknown): Fragment[] {
  if (filter === undefined) return []
  if (!isPlainObject(filter)) throw bad('filter must be an object of field conditions')
  const fields = Object.entries(filter)
  if (fields.length > MAX_FILTER_FIELDS)
    throw bad(`filter has ${fields.length} fields; at most ${MAX_FILTER_FIELDS} are allowed`)
  const out: Fragment[] = []
  for (const [field, cond] of fields) {
    checkText('filter field name', field, MAX_LABEL_CHARS)
    const where = `field "${field}"`
    const opKeys = isPlainObject(cond) ? Object.keys(cond).filter((k) => k.startsWith('$')) : []
    if (opKeys.length === 0) {
      out.push(onField(field, equals(where, cond)))
      continue
    }
    const ops = cond as Record<string, unknown>
    if (opKeys.length !== Object.keys(ops).length)
      throw bad(`filter ${where} mixes operators ($...) with plain keys`)
    for (const op of opKeys) {
      const arg = ops[op]
      if (!(OPERATORS as readonly string[]).includes(op))
        throw bad(`filter ${where}: unknown operator ${op} (supported: ${OPERATORS.join(', ')})`)
      if (op === '$eq') out.push(onField(field, equals(where, arg)))
      else if (op === '$ne') out.push(onField(field, equals(where, arg), true))
      else if (op === '$in') {
        if (!Array.isArray(arg)) throw bad(`filter ${where}: $in needs an array of values`)
        if (arg.length > MAX_IN_VALUES)
          throw bad(`filter ${where}: $in has ${arg.length} values; at most ${MAX_IN_VALUES} are allowed`)
        if (arg.length === 0) {
          out.push({ sql: '0', args: [] })
          continue
        }
        const alts = arg.map((a) => equals(where, a))
        out.push(
          onField(field, {
            sql: alts.map((a) => `(${a.sql})`).join(' OR '),
            args: alts.flatMap((a) => a.args),
          }),
        )
      } else {
        const cmp = RANGE_SQL[op as Operator]!
        if (typeof arg === 'number' && Number.isFinite(arg))
          out.push(onField(field, { sql: `j.type IN ('integer', 'real') AND j.atom ${cmp} ?`, args: [arg] }))
        else if (typeof arg === 'string')
          out.push(onField(field, { sql: `j.type = 'text' AND j.atom ${cmp} ?`, args: [arg] }))
        else throw bad(`filter ${where}: ${op} needs a number or a string`)
      }
    }
  }
  return out
}

interface Row {
  owner: string
  namespace: string
  key: string
  value: string
  created_at: string
  updated_at: string
  expires_at: string | null
}

/** `withOwner`: callers who may see other principals' items (admins, auditors, operators) are told whose an item is. */
const toRecord = (r: Row, withOwner = false): MemoryRecord => ({
  ...(withOwner ? { owner: r.owner } : {}),
  namespace: decodeNamespace(r.namespace),
  key: r.key,
  value: JSON.parse(r.value) as Record<string, unknown>,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  ...(r.expires_at ? { expiresAt: r.expires_at } : {}),
})

const COLUMNS = 'owner, namespace, key, value, created_at, updated_at, expires_at'
const LIVE = '(expires_at IS NULL OR expires_at > ?)'
const TRUNCATE_FN = 'gatehouse_ns_truncate'

function ownerFilter(scope: { owner?: string; all: boolean }): Fragment {
  return scope.all ? { sql: '', args: [] } : { sql: ' AND owner = ?', args: [scope.owner] }
}

/** Conditions selecting a namespace prefix: none for [], else an index range. */
function prefixRange(encoded: string): Fragment {
  if (!encoded) return { sql: '', args: [] }
  return { sql: ' AND namespace >= ? AND namespace < ?', args: [encoded, encoded.slice(0, -1) + ESC] }
}

/**
 * Whose items a call touches. Everyone's own by default; admins, auditors and operators may name
 * another owner of their tenant (`owner`), and their reads without one span every owner (`all`).
 * A member naming someone else gets nothing, exactly as if the item did not exist.
 */
function ownerScope(ctx: CallContext, requested: unknown): { own: string; owner?: string; all: boolean } {
  const own = ownerOf(ctx)
  if (requested !== undefined && typeof requested !== 'string') throw bad('owner must be a string')
  if (!seesTenant(ctx))
    return { own, owner: requested === undefined || requested === own ? own : '\u0000', all: false }
  return requested === undefined ? { own, all: true } : { own, owner: requested, all: false }
}

/**
 * The `store_items` table. Items are partitioned by owner (the principal that wrote them; an
 * agent writes for the caller of its run): the same namespace and key of two members are two
 * items. Time comes from Date.now() (ISO-8601 UTC text, which sorts), so
 * one clock decides expiry for writes, reads and the sweeper.
 */
export class SqliteMemory implements MemoryStore {
  constructor(private readonly db: Database.Database) {
    db.function(TRUNCATE_FN, { deterministic: true }, (ns: unknown, depth: unknown) =>
      typeof ns === 'string' && typeof depth === 'number' && depth > 0 ? truncateEncoded(ns, depth) : ns,
    )
  }

  async put(ctx: CallContext, item: MemoryPut): Promise<MemoryRecord> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(item)) throw bad('put needs { namespace, key, value }')
    const scope = ownerScope(ctx, item.owner)
    const owner = scope.owner ?? scope.own
    if (owner === '\u0000') throw new GatewayError('not_found', 'not found')
    const ns = checkNamespace('namespace', item.namespace, 1)
    const key = checkKey(item.key)
    const value = checkValue(item.value)
    const ttl = checkTtl(item.ttlSeconds)
    const nowMs = Date.now()
    const now = new Date(nowMs).toISOString()
    const expires = ttl === undefined ? null : new Date(nowMs + ttl * 1000).toISOString()
    // Replacing an item that has already expired (not yet swept) creates a new one.
    const row = this.db
      .prepare(
        `INSERT INTO store_items (tenant, owner, namespace, key, value, created_at, updated_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(tenant, owner, namespace, key) DO UPDATE SET
           value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
           created_at = CASE WHEN store_items.expires_at IS NOT NULL AND store_items.expires_at <= excluded.updated_at
                             THEN excluded.created_at ELSE store_items.created_at END
         RETURNING ${COLUMNS}`,
      )
      .get(tenant, owner, ns, key, value, now, now, expires) as Row
    return toRecord(row, seesTenant(ctx))
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
    const now = new Date().toISOString()
    const row = (
      scope.all
        ? this.db
            .prepare(
              `SELECT ${COLUMNS} FROM store_items WHERE tenant = ? AND namespace = ? AND key = ? AND ${LIVE}
               ORDER BY owner = ? DESC, updated_at DESC LIMIT 1`,
            )
            .get(tenant, ns, k, now, scope.own)
        : this.db
            .prepare(
              `SELECT ${COLUMNS} FROM store_items WHERE tenant = ? AND owner = ? AND namespace = ? AND key = ? AND ${LIVE}`,
            )
            .get(tenant, scope.owner, ns, k, now)
    ) as Row | undefined
    return row ? toRecord(row, seesTenant(ctx)) : undefined
  }

  async search(ctx: CallContext, query: MemorySearch): Promise<MemoryRecord[]> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(query)) throw bad('search needs { namespacePrefix }')
    const range = prefixRange(checkNamespace('namespace prefix', query.namespacePrefix ?? [], 0))
    const filters = compileFilter(query.filter)
    const limit = checkInt('limit', query.limit, 1, MAX_LIMIT, 10)
    const offset = checkInt('offset', query.offset, 0, Number.MAX_SAFE_INTEGER, 0)
    const owner = ownerFilter(ownerScope(ctx, query.owner))
    const sql =
      `SELECT ${COLUMNS} FROM store_items WHERE tenant = ?${owner.sql}${range.sql} AND ${LIVE}` +
      filters.map((f) => ` AND ${f.sql}`).join('') +
      ' ORDER BY updated_at DESC, namespace, key, owner LIMIT ? OFFSET ?'
    const rows = this.db
      .prepare(sql)
      .all(
        tenant,
        ...owner.args,
        ...range.args,
        new Date().toISOString(),
        ...filters.flatMap((f) => f.args),
        limit,
        offset,
      ) as Row[]
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
    const row = this.db
      .prepare(
        'DELETE FROM store_items WHERE tenant = ? AND owner = ? AND namespace = ? AND key = ? RETURNING expires_at',
      )
      .get(tenant, scope.owner ?? scope.own, ns, k) as { expires_at: string | null } | undefined
    // An expired row is removed too, but it was already gone as far as the caller could see.
    return row !== undefined && (row.expires_at === null || row.expires_at > new Date().toISOString())
  }

  async listNamespaces(ctx: CallContext, query: NamespaceQuery = {}): Promise<string[][]> {
    const tenant = scopedTenant(ctx)
    if (!isPlainObject(query)) throw bad('listNamespaces needs an object')
    const range = prefixRange(checkNamespace('namespace prefix', query.prefix ?? [], 0))
    const depth = checkInt('max depth', query.maxDepth, 1, MAX_LABELS, 0)
    const limit = checkInt('limit', query.limit, 1, MAX_LIMIT, 100)
    const offset = checkInt('offset', query.offset, 0, Number.MAX_SAFE_INTEGER, 0)
    const owner = ownerFilter(ownerScope(ctx, query.owner))
    const rows = this.db
      .prepare(
        `SELECT DISTINCT ${TRUNCATE_FN}(namespace, ?) AS ns FROM store_items
         WHERE tenant = ?${owner.sql}${range.sql} AND ${LIVE} ORDER BY ns LIMIT ? OFFSET ?`,
      )
      .all(depth, tenant, ...owner.args, ...range.args, new Date().toISOString(), limit, offset) as {
      ns: string
    }[]
    return rows.map((r) => decodeNamespace(r.ns))
  }

  async sweepExpired(nowMs: number = Date.now()): Promise<number> {
    return this.db
      .prepare('DELETE FROM store_items WHERE expires_at IS NOT NULL AND expires_at <= ?')
      .run(new Date(nowMs).toISOString()).changes
  }
}
