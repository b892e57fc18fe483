import type Database from 'better-sqlite3'
import type { CallContext, Role } from '../../context.js'
import type { ApiKeyRecord, ApiKeyStore, NewApiKey } from '../types.js'
import { nowIso, requireOperator } from '../scope.js'

interface Row {
  id: string
  tenant: string
  name: string
  role: string
  operator: number
  scopes: string
  created_at: string
  expires_at: string | null
  revoked_at: string | null
  created_by: string | null
}

const COLUMNS = 'id, tenant, name, role, operator, scopes, created_at, expires_at, revoked_at, created_by'
export const BOOTSTRAP_KEY_ID = 'bootstrap'

function toRecord(r: Row): ApiKeyRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    name: r.name,
    role: r.role as Role,
    operator: r.operator === 1,
    scopes: JSON.parse(r.scopes) as string[],
    createdAt: r.created_at,
    ...(r.expires_at ? { expiresAt: r.expires_at } : {}),
    ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
    ...(r.created_by ? { createdBy: r.created_by } : {}),
  }
}

export class SqliteKeys implements ApiKeyStore {
  constructor(private readonly db: Database.Database) {}

  async create(ctx: CallContext, key: NewApiKey): Promise<ApiKeyRecord> {
    if (key.operator) requireOperator(ctx, 'creating an operator key')
    this.db
      .prepare(
        `INSERT INTO api_keys (id, tenant, name, role, operator, scopes, hash, created_at, expires_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        key.id,
        ctx.tenant,
        key.name,
        key.role,
        key.operator ? 1 : 0,
        JSON.stringify(key.scopes ?? []),
        key.hash,
        nowIso(),
        key.expiresAt ?? null,
        ctx.principal.id,
      )
    return toRecord(this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).get(key.id) as Row)
  }

  async list(ctx: CallContext): Promise<ApiKeyRecord[]> {
    const rows = this.db
      .prepare(`SELECT ${COLUMNS} FROM api_keys WHERE tenant = ? ORDER BY created_at, id`)
      .all(ctx.tenant) as Row[]
    return rows.map(toRecord)
  }

  async revoke(ctx: CallContext, id: string): Promise<boolean> {
    const res = this.db
      .prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant = ? AND revoked_at IS NULL')
      .run(nowIso(), id, ctx.tenant)
    return res.changes > 0
  }

  async lookupByHash(hash: string, now = new Date()): Promise<ApiKeyRecord | undefined> {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE hash = ?`).get(hash) as Row | undefined
    if (!row || row.revoked_at) return undefined
    if (row.expires_at && row.expires_at <= now.toISOString()) return undefined
    return toRecord(row)
  }

  async upsertBootstrap(ctx: CallContext, hash: string): Promise<void> {
    requireOperator(ctx, 'setting the bootstrap key')
    this.db
      .prepare(
        `INSERT INTO api_keys (id, tenant, name, role, operator, scopes, hash, created_at, created_by)
         VALUES (?, ?, 'bootstrap admin', 'admin', 1, '[]', ?, ?, 'gatehouse')
         ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, revoked_at = NULL`,
      )
      .run(BOOTSTRAP_KEY_ID, ctx.tenant, hash, nowIso())
  }

  async hasBootstrap(_ctx: CallContext): Promise<boolean> {
    return (
      this.db.prepare('SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NULL').get(BOOTSTRAP_KEY_ID) !==
      undefined
    )
  }
}
