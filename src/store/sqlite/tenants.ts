import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import type { Tenant, TenantStore } from '../types.js'
import { nowIso, requireOperator } from '../scope.js'
import { Row, toTenant } from '../rows/tenants.js'

export class SqliteTenants implements TenantStore {
  constructor(private readonly db: Database.Database) {}

  async ensure(ctx: CallContext, name: string, displayName?: string): Promise<Tenant> {
    requireOperator(ctx, 'creating a tenant')
    this.db
      .prepare(
        `INSERT INTO tenants (name, display_name, created_at) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET display_name = COALESCE(excluded.display_name, display_name)`,
      )
      .run(name, displayName ?? null, nowIso())
    return toTenant(this.db.prepare('SELECT * FROM tenants WHERE name = ?').get(name) as Row)
  }

  async get(ctx: CallContext, name: string): Promise<Tenant | undefined> {
    if (name !== ctx.tenant && !ctx.operator) return undefined
    const row = this.db.prepare('SELECT * FROM tenants WHERE name = ?').get(name) as Row | undefined
    return row ? toTenant(row) : undefined
  }

  async list(ctx: CallContext): Promise<Tenant[]> {
    const rows = ctx.operator
      ? (this.db.prepare('SELECT * FROM tenants ORDER BY name').all() as Row[])
      : (this.db.prepare('SELECT * FROM tenants WHERE name = ?').all(ctx.tenant) as Row[])
    return rows.map(toTenant)
  }
}
