import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import type { ApplyAction, ResourceInput, ResourceKind, ResourceRecord, ResourceStore } from '../types.js'
import { nowIso, scopedTenant } from '../scope.js'
import { Row, toRecord } from '../rows/resources.js'

export class SqliteResources implements ResourceStore {
  constructor(private readonly db: Database.Database) {}

  async apply(
    ctx: CallContext,
    docs: ResourceInput[],
  ): Promise<{ resource: ResourceRecord; action: ApplyAction }[]> {
    for (const d of docs) scopedTenant(ctx, d.tenant)
    const select = this.db.prepare('SELECT * FROM resources WHERE tenant = ? AND kind = ? AND name = ?')
    const upsert = this.db.prepare(
      `INSERT INTO resources (tenant, kind, name, spec, generation, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(tenant, kind, name) DO UPDATE SET spec = excluded.spec, generation = excluded.generation,
         updated_at = excluded.updated_at`,
    )
    const ensureTenant = this.db.prepare(
      'INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING',
    )
    return this.db
      .transaction(() =>
        docs.map((d) => {
          const spec = JSON.stringify(d.spec)
          const prev = select.get(d.tenant, d.kind, d.name) as Row | undefined
          if (prev && prev.spec === spec) return { resource: toRecord(prev), action: 'unchanged' as const }
          ensureTenant.run(d.tenant, nowIso())
          const generation = (prev?.generation ?? 0) + 1
          upsert.run(d.tenant, d.kind, d.name, spec, generation, nowIso())
          const action: ApplyAction = prev ? 'updated' : 'created'
          return { resource: toRecord(select.get(d.tenant, d.kind, d.name) as Row), action }
        }),
      )
      .immediate()
  }

  async get(ctx: CallContext, kind: ResourceKind, name: string): Promise<ResourceRecord | undefined> {
    const row = this.db
      .prepare('SELECT * FROM resources WHERE tenant = ? AND kind = ? AND name = ?')
      .get(ctx.tenant, kind, name) as Row | undefined
    return row ? toRecord(row) : undefined
  }

  async list(
    ctx: CallContext,
    kind?: ResourceKind,
    opts: { allTenants?: boolean } = {},
  ): Promise<ResourceRecord[]> {
    const all = opts.allTenants === true && ctx.operator
    const where: string[] = []
    const args: string[] = []
    if (!all) {
      where.push('tenant = ?')
      args.push(ctx.tenant)
    }
    if (kind) {
      where.push('kind = ?')
      args.push(kind)
    }
    const sql = `SELECT * FROM resources ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY tenant, kind, name`
    return (this.db.prepare(sql).all(...args) as Row[]).map(toRecord)
  }

  async delete(ctx: CallContext, kind: ResourceKind, name: string): Promise<boolean> {
    const res = this.db
      .prepare('DELETE FROM resources WHERE tenant = ? AND kind = ? AND name = ?')
      .run(ctx.tenant, kind, name)
    return res.changes > 0
  }
}
