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
import { sqlState, UNIQUE_VIOLATION, type Db } from './db.js'

const params = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ')

/** First key of the advisory locks that serialise saves of one (tenant, user, connector). */
const SAVE_LOCK = 0x636f

function constraintOf(err: unknown): string | undefined {
  return sqlState(err) === UNIQUE_VIOLATION ? ((err as { constraint?: string }).constraint ?? '') : undefined
}

export class PgConnections implements ConnectionStore {
  constructor(private readonly db: Db) {}

  async save(c: NewConnection): Promise<{ record: ConnectionRecord; replaced?: ConnectionRecord }> {
    const values = connectionValues(c, nowIso())
    try {
      return await this.db.tx(async (cl) => {
        // Saves of one (tenant, user, connector) take turns: a row lock cannot cover a row that
        // does not exist yet, so two first saves would otherwise race on the unique index.
        await cl.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
          SAVE_LOCK,
          JSON.stringify([c.tenant, c.userId, c.connector]),
        ])
        const old = await this.db.one<ConnectionRow>(
          'SELECT * FROM connections WHERE tenant = $1 AND user_id = $2 AND connector = $3 FOR UPDATE',
          [c.tenant, c.userId, c.connector],
          cl,
        )
        if (old) await this.db.count('DELETE FROM connections WHERE id = $1', [old.id], cl)
        const row = await this.db.one<ConnectionRow>(
          `INSERT INTO connections (${CONNECTION_COLUMNS}) VALUES (${params(15)}) RETURNING *`,
          values,
          cl,
        )
        return { record: toConnection(row!), ...(old ? { replaced: toConnection(old) } : {}) }
      })
    } catch (err) {
      if (constraintOf(err) === 'connections_pkey')
        throw new GatewayError('conflict', `connection id ${c.id} is already taken`)
      throw err
    }
  }

  async find(tenant: string, userId: string, connector: string): Promise<ConnectionRecord | undefined> {
    const r = await this.db.one<ConnectionRow>(
      'SELECT * FROM connections WHERE tenant = $1 AND user_id = $2 AND connector = $3',
      [tenant, userId, connector],
    )
    return r && toConnection(r)
  }

  async get(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined> {
    const r = await this.db.one<ConnectionRow>('SELECT * FROM connections WHERE id = $1 AND tenant = $2', [
      id,
      ctx.tenant,
    ])
    return r && toConnection(r)
  }

  async list(
    ctx: CallContext,
    filter: { userId?: string; connector?: string } = {},
  ): Promise<ConnectionRecord[]> {
    const args: string[] = [ctx.tenant]
    const where = ['tenant = $1']
    for (const [column, value] of [
      ['user_id', filter.userId],
      ['connector', filter.connector],
    ] as const) {
      if (value === undefined) continue
      args.push(value)
      where.push(`${column} = $${args.length}`)
    }
    const rows = await this.db.rows<ConnectionRow>(
      `SELECT * FROM connections WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC`,
      args,
    )
    return rows.map(toConnection)
  }

  async update(
    id: string,
    expectedVersion: number,
    u: ConnectionUpdate,
  ): Promise<ConnectionRecord | undefined> {
    const set = updateValues(u)
    const n = set.length
    // Row lock + re-check: of two updates expecting the same version, the second finds it moved.
    const row = await this.db.one<ConnectionRow>(
      `UPDATE connections SET ${set.map(([c], i) => `${c} = $${i + 1}`).join(', ')},
         version = version + 1, updated_at = $${n + 1}
        WHERE id = $${n + 2} AND version = $${n + 3} RETURNING *`,
      [...set.map(([, v]) => v), nowIso(), id, expectedVersion],
    )
    return row && toConnection(row)
  }

  async rewrap(id: string, expectedVersion: number, sealed: Envelope): Promise<boolean> {
    const e = sealedEnvelope(sealed)
    const n = await this.db.count(
      `UPDATE connections SET key_id = $1, wrapped_key = $2
        WHERE id = $3 AND version = $4 AND ciphertext = $5`,
      [e.keyId, e.wrappedKey, id, expectedVersion, e.ciphertext],
    )
    return n > 0
  }

  async delete(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined> {
    const row = await this.db.one<ConnectionRow>(
      'DELETE FROM connections WHERE id = $1 AND tenant = $2 RETURNING *',
      [id, ctx.tenant],
    )
    return row && toConnection(row)
  }

  async deleteIfVersion(id: string, expectedVersion: number): Promise<boolean> {
    return (
      (await this.db.count('DELETE FROM connections WHERE id = $1 AND version = $2', [id, expectedVersion])) >
      0
    )
  }

  async scan(afterId: string | undefined, limit: number): Promise<ConnectionRecord[]> {
    const n = Math.min(Math.max(Math.trunc(limit), 1), 1000)
    const rows = await this.db.rows<ConnectionRow>(
      'SELECT * FROM connections WHERE id > $1 ORDER BY id LIMIT $2',
      [afterId ?? '', n],
    )
    return rows.map(toConnection)
  }

  async putState(s: OAuthStateRecord): Promise<void> {
    try {
      await this.db.count(
        `INSERT INTO oauth_states (${STATE_COLUMNS}) VALUES (${params(12)})`,
        stateValues(s),
      )
    } catch (err) {
      if (constraintOf(err) !== undefined)
        throw new GatewayError('conflict', 'this OAuth state is already stored')
      throw err
    }
  }

  async takeState(id: string, nowIsoValue: string): Promise<OAuthStateRecord | undefined> {
    const now = isoOf(nowIsoValue, 'now')
    // One DELETE: of concurrent takers, one deletes the row; the others wait on its lock and find nothing.
    const row = await this.db.one<StateRow>('DELETE FROM oauth_states WHERE id = $1 RETURNING *', [
      stateId(id),
    ])
    return row && row.expires_at > now ? toState(row) : undefined
  }

  async pruneStates(nowIsoValue: string): Promise<number> {
    return this.db.count('DELETE FROM oauth_states WHERE expires_at <= $1', [isoOf(nowIsoValue, 'now')])
  }

  async getClient(tenant: string, connector: string, issuer: string): Promise<OAuthClientRecord | undefined> {
    const row = await this.db.one<ClientRow>(
      'SELECT * FROM oauth_clients WHERE tenant = $1 AND connector = $2 AND issuer = $3',
      [tenant, connector, issuer],
    )
    return row && toClient(row)
  }

  async putClient(r: OAuthClientRecord): Promise<OAuthClientRecord> {
    // A concurrent insert of the same key waits for the first to commit, then does nothing.
    await this.db.count(
      `INSERT INTO oauth_clients (${CLIENT_COLUMNS}) VALUES (${params(8)})
       ON CONFLICT (tenant, connector, issuer) DO NOTHING`,
      clientValues(r),
    )
    return (await this.getClient(r.tenant, r.connector, r.issuer))!
  }

  async scanClients(): Promise<OAuthClientRecord[]> {
    const rows = await this.db.rows<ClientRow>(
      'SELECT * FROM oauth_clients ORDER BY tenant, connector, issuer',
    )
    return rows.map(toClient)
  }

  async updateClientSecret(
    tenant: string,
    connector: string,
    issuer: string,
    sealedSecret: string,
  ): Promise<void> {
    await this.db.count(
      'UPDATE oauth_clients SET sealed_secret = $1 WHERE tenant = $2 AND connector = $3 AND issuer = $4',
      [clientSecret(sealedSecret), tenant, connector, issuer],
    )
  }
}
