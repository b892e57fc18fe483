import type { CallContext, Role } from '../../context.js'
import type { ApiKeyRecord, ApiKeyStore, NewApiKey } from '../types.js'
import { nowIso, requireOperator } from '../scope.js'
import type { Db } from './db.js'

interface Row {
  id: string
  tenant: string
  name: string
  role: string
  operator: boolean
  scopes: string
  created_at: string
  expires_at: string | null
  revoked_at: string | null
  created_by: string | null
}

const COLUMNS = 'id, tenant, name, role, operator, scopes, created_at, expires_at, revoked_at, created_by'
/** The same id as the SQLite store's bootstrap key. */
export const BOOTSTRAP_KEY_ID = 'bootstrap'

function toRecord(r: Row): ApiKeyRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    role: r.role as Role,
    operator: r.operator,
    scopes: JSON.parse(r.scopes) as string[],
    createdAt: r.created_at,
    ...(r.expires_at ? { expiresAt: r.expires_at } : {}),
    ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
    ...(r.created_by ? { createdBy: r.created_by } : {}),
  }
}

export class PgKeys implements ApiKeyStore {
  constructor(private readonly db: Db) {}

  async create(ctx: CallContext, key: NewApiKey): Promise<ApiKeyRecord> {
    if (key.operator) requireOperator(ctx, 'creating an operator key')
    const row = await this.db.one<Row>(
      `INSERT INTO api_keys (id, tenant, name, role, operator, scopes, hash, created_at, expires_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       RETURNING ${COLUMNS}`,
      [
        key.id,
        ctx.tenant,
        key.name,
        key.role,
        key.operator === true,
        JSON.stringify(key.scopes ?? []),
        key.hash,
        nowIso(),
        key.expiresAt ?? null,
        ctx.principal.id,
      ],
    )
    return toRecord(row!)
  }

  async list(ctx: CallContext): Promise<ApiKeyRecord[]> {
    const rows = await this.db.rows<Row>(
      `SELECT ${COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id`,
      [ctx.tenant],
    )
    return rows.map(toRecord)
  }

  async revoke(ctx: CallContext, id: string): Promise<boolean> {
    const n = await this.db.count(
      'UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant = $3 AND revoked_at IS NULL',
      [nowIso(), id, ctx.tenant],
    )
    return n > 0
  }

  async lookupByHash(hash: string, now = new Date()): Promise<ApiKeyRecord | undefined> {
    const row = await this.db.one<Row>(`SELECT ${COLUMNS} FROM api_keys WHERE hash = $1`, [hash])
    if (!row || row.revoked_at) return undefined
    if (row.expires_at && row.expires_at <= now.toISOString()) return undefined
    return toRecord(row)
  }

  async upsertBootstrap(ctx: CallContext, hash: string): Promise<void> {
    requireOperator(ctx, 'setting the bootstrap key')
    await this.db.rows(
      `INSERT INTO api_keys (id, tenant, name, role, operator, scopes, hash, created_at, created_by)
       VALUES ($1, $2, 'bootstrap admin', 'admin', true, '[]', $3, $4, 'gatehouse')
       ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, revoked_at = NULL`,
      [BOOTSTRAP_KEY_ID, ctx.tenant, hash, nowIso()],
    )
  }

  async hasBootstrap(_ctx: CallContext): Promise<boolean> {
    const row = await this.db.one('SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL', [
      BOOTSTRAP_KEY_ID,
    ])
    return row !== undefined
  }
}
