import type { CallContext } from '../../context.js'
import type { ApplyAction, ResourceInput, ResourceKind, ResourceRecord, ResourceStore } from '../types.js'
import { nowIso, scopedTenant } from '../scope.js'
import type { Db } from './db.js'
import { Row, toRecord } from '../rows/resources.js'

export class PgResources implements ResourceStore {
  constructor(private readonly db: Db) {}

  async apply(
    ctx: CallContext,
    docs: ResourceInput[],
  ): Promise<{ resource: ResourceRecord; action: ApplyAction }[]> {
    for (const d of docs) scopedTenant(ctx, d.tenant)
    return this.db.tx(async (c) => {
      const out: { resource: ResourceRecord; action: ApplyAction }[] = []
      for (const d of docs) {
        const spec = JSON.stringify(d.spec)
        // One statement decides: a new row (generation 1), a changed spec (generation + 1), or no
        // row back when the spec is the same. Concurrent applies of one resource serialise on it.
        const now = nowIso()
        await c.query(
          'INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
          [d.tenant, now],
        )
        const changed = (
          await c.query<Row>(
            `INSERT INTO resources AS r (tenant, kind, name, spec, generation, updated_at)
             VALUES ($1, $2, $3, $4, 1, $5)
             ON CONFLICT (tenant, kind, name) DO UPDATE
               SET spec = excluded.spec, generation = r.generation + 1, updated_at = excluded.updated_at
               WHERE r.spec IS DISTINCT FROM excluded.spec
             RETURNING *`,
            [d.tenant, d.kind, d.name, spec, now],
          )
        ).rows[0]
        if (changed) {
          out.push({ resource: toRecord(changed), action: changed.generation === 1 ? 'created' : 'updated' })
          continue
        }
        const same = (
          await c.query<Row>('SELECT * FROM resources WHERE tenant = $1 AND kind = $2 AND name = $3', [
            d.tenant,
            d.kind,
            d.name,
          ])
        ).rows[0]!
        out.push({ resource: toRecord(same), action: 'unchanged' })
      }
      return out
    })
  }

  async get(ctx: CallContext, kind: ResourceKind, name: string): Promise<ResourceRecord | undefined> {
    const row = await this.db.one<Row>(
      'SELECT * FROM resources WHERE tenant = $1 AND kind = $2 AND name = $3',
      [ctx.tenant, kind, name],
    )
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
      args.push(ctx.tenant)
      where.push(`tenant = $${args.length}`)
    }
    if (kind) {
      args.push(kind)
      where.push(`kind = $${args.length}`)
    }
    const sql = `SELECT * FROM resources ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY tenant, kind, name`
    return (await this.db.rows<Row>(sql, args)).map(toRecord)
  }

  async delete(ctx: CallContext, kind: ResourceKind, name: string): Promise<boolean> {
    const n = await this.db.count('DELETE FROM resources WHERE tenant = $1 AND kind = $2 AND name = $3', [
      ctx.tenant,
      kind,
      name,
    ])
    return n > 0
  }
}
