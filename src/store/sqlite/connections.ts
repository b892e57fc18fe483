import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import type { Envelope } from '../../vault/envelope.js'
import type {
  ConnectionRecord,
  ConnectionStore,
  ConnectionUpdate,
  NewConnection,
  OAuthClientRecord,
  OAuthStateRecord,
} from '../connections.js'
import {
  CLIENT_COLUMNS,
  clientSecret,
  clientValues,
  CONNECTION_COLUMNS,
  connectionValues,
  isoOf,
  sealedEnvelope,
  STATE_COLUMNS,
  stateId,
  stateValues,
  toClient,
  toConnection,
  toState,
  updateValues,
  type ClientRow,
  type ConnectionRow,
  type StateRow,
} from '../rows/connections.js'
import { nowIso } from '../scope.js'

/** SQLite binds no booleans: 1 and 0 instead. */
const bind = (values: unknown[]): unknown[] => values.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v))
const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ')

export class SqliteConnections implements ConnectionStore {
  constructor(private readonly db: Database.Database) {}

  async save(c: NewConnection): Promise<{ record: ConnectionRecord; replaced?: ConnectionRecord }> {
    const values = bind(connectionValues(c, nowIso()))
    // IMMEDIATE: the read of the old row and the replacement happen under one write lock.
    return this.db
      .transaction(() => {
        const old = this.row('tenant = ? AND user_id = ? AND connector = ?', c.tenant, c.userId, c.connector)
        if (old) this.db.prepare('DELETE FROM connections WHERE id = ?').run(old.id)
        try {
          this.db
            .prepare(`INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES (${marks(15)})`)
            .run(...values)
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
            throw new GatewayError('conflict', `connection id ${c.id} is already taken`)
          throw err
        }
        const record = toConnection(this.row('id = ?', c.id)!)
        return { record, ...(old ? { replaced: toConnection(old) } : {}) }
      })
      .immediate()
  }

  async find(tenant: string, userId: string, connector: string): Promise<ConnectionRecord | undefined> {
    const r = this.row('tenant = ? AND user_id = ? AND connector = ?', tenant, userId, connector)
    return r && toConnection(r)
  }

  async get(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined> {
    const r = this.row('id = ? AND tenant = ?', id, ctx.tenant)
    return r && toConnection(r)
  }

  async list(
    ctx: CallContext,
    filter: { userId?: string; connector?: string } = {},
  ): Promise<ConnectionRecord[]> {
    const where = ['tenant = ?']
    const args: string[] = [ctx.tenant]
    for (const [column, value] of [
      ['user_id', filter.userId],
      ['connector', filter.connector],
    ] as const) {
      if (value === undefined) continue
      where.push(`${column} = ?`)
      args.push(value)
    }
    const rows = this.db
      .prepare(`SELECT * FROM connections WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC`)
      .all(...args) as ConnectionRow[]
    return rows.map(toConnection)
  }

  async update(
    id: string,
    expectedVersion: number,
    u: ConnectionUpdate,
  ): Promise<ConnectionRecord | undefined> {
    const set = updateValues(u)
    const row = this.db
      .prepare(
        `UPDATE connections SET ${set.map(([c]) => `${c} = ?`).join(', ')}, version = version + 1, updated_at = ?
          WHERE id = ? AND version = ? RETURNING *`,
      )
      .get(...bind(set.map(([, v]) => v)), nowIso(), id, expectedVersion) as ConnectionRow | undefined
    return row && toConnection(row)
  }

  async rewrap(id: string, expectedVersion: number, sealed: Envelope): Promise<boolean> {
    const e = sealedEnvelope(sealed)
    const res = this.db
      .prepare(
        `UPDATE connections SET key_id = ?, wrapped_key = ?
          WHERE id = ? AND version = ? AND ciphertext = ?`,
      )
      .run(e.keyId, e.wrappedKey, id, expectedVersion, e.ciphertext)
    return res.changes > 0
  }

  async delete(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined> {
    const row = this.db
      .prepare('DELETE FROM connections WHERE id = ? AND tenant = ? RETURNING *')
      .get(id, ctx.tenant) as ConnectionRow | undefined
    return row && toConnection(row)
  }

  async deleteIfVersion(id: string, expectedVersion: number): Promise<boolean> {
    return (
      this.db.prepare('DELETE FROM connections WHERE id = ? AND version = ?').run(id, expectedVersion)
        .changes > 0
    )
  }

  async scan(afterId: string | undefined, limit: number): Promise<ConnectionRecord[]> {
    const n = Math.min(Math.max(Math.trunc(limit), 1), 1000)
    const rows = this.db
      .prepare('SELECT * FROM connections WHERE id > ? ORDER BY id LIMIT ?')
      .all(afterId ?? '', n) as ConnectionRow[]
    return rows.map(toConnection)
  }

  async putState(s: OAuthStateRecord): Promise<void> {
    try {
      this.db
        .prepare(`INSERT INTO oauth_states (${STATE_COLUMNS}) VALUES (${marks(12)})`)
        .run(...stateValues(s))
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw new GatewayError('conflict', 'this OAuth state is already stored')
      throw err
    }
  }

  async takeState(id: string, nowIsoValue: string): Promise<OAuthStateRecord | undefined> {
    const now = isoOf(nowIsoValue, 'now')
    // One statement: of several takers, exactly one deletes the row and gets it back.
    const row = this.db.prepare('DELETE FROM oauth_states WHERE id = ? RETURNING *').get(stateId(id)) as
      StateRow | undefined
    return row && row.expires_at > now ? toState(row) : undefined
  }

  async pruneStates(nowIsoValue: string): Promise<number> {
    return this.db.prepare('DELETE FROM oauth_states WHERE expires_at <= ?').run(isoOf(nowIsoValue, 'now'))
      .changes
  }

  async getClient(tenant: string, connector: string, issuer: string): Promise<OAuthClientRecord | undefined> {
    const row = this.db
      .prepare('SELECT * FROM oauth_clients WHERE tenant = ? AND connector = ? AND issuer = ?')
      .get(tenant, connector, issuer) as ClientRow | undefined
    return row && toClient(row)
  }

  async putClient(r: OAuthClientRecord): Promise<OAuthClientRecord> {
    this.db
      .prepare(
        `INSERT INTO oauth_clients (${CLIENT_COLUMNS}) VALUES (${marks(8)})
         ON CONFLICT (tenant, connector, issuer) DO NOTHING`,
      )
      .run(...clientValues(r))
    return (await this.getClient(r.tenant, r.connector, r.issuer))!
  }

  async scanClients(): Promise<OAuthClientRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM oauth_clients ORDER BY tenant, connector, issuer')
      .all() as ClientRow[]
    return rows.map(toClient)
  }

  async updateClientSecret(
    tenant: string,
    connector: string,
    issuer: string,
    sealedSecret: string,
  ): Promise<void> {
    this.db
      .prepare('UPDATE oauth_clients SET sealed_secret = ? WHERE tenant = ? AND connector = ? AND issuer = ?')
      .run(clientSecret(sealedSecret), tenant, connector, issuer)
  }

  private row(where: string, ...args: string[]): ConnectionRow | undefined {
    return this.db.prepare(`SELECT * FROM connections WHERE ${where}`).get(...args) as
      ConnectionRow | undefined
  }
}
