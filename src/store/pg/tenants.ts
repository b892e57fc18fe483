import type { CallContext } from '../../context.js'
import type { Tenant, TenantStore } from '../types.js'
import { nowIso, requireOperator } from '../scope.js'
import type { Db } from './db.js'
import { Row, toTenant } from '../rows/tenants.js'

export class PgTenants implements TenantStore {
  constructor(private readonly db: Db) {}

  async ensure(ctx: CallContext, name: string, displayName?: string): Promise<Tenant> {
    requireOperator(ctx, 'creating a tenant')
    const row = await this.db.one<Row>(
      `INSERT INTO tenants (name, display_name, created_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET display_name = COALESCE(excluded.display_name, tenants.display_name)
       RETURNING *`,
      [name, displayName ?? null, nowIso()],
    )
    return toTenant(row!)
  }

  async get(ctx: CallContext, name: string): Promise<Tenant | undefined> {
    if (name !== ctx.tenant && !ctx.operator) return undefined
    const row = await this.db.one<Row>('SELECT * FROM tenants WHERE name = $1', [name])
    return row ? toTenant(row) : undefined
  }

  async list(ctx: CallContext): Promise<Tenant[]> {
    const rows = ctx.operator
      ? await this.db.rows<Row>('SELECT * FROM tenants ORDER BY name')
      : await this.db.rows<Row>('SELECT * FROM tenants WHERE name = $1', [ctx.tenant])
    return rows.map(toTenant)
  }
}
