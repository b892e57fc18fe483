import pg from 'pg'
import { GatewayError } from '../../errors.js'
import type { Store } from '../types.js'
import { Db, TYPES } from './db.js'
import { PgKeys } from './keys.js'
import { PgMemory } from './memory.js'
import { PG_MIGRATIONS } from './migrations.js'
import { PgWebhookOutbox } from './outbox.js'
import { PgResources } from './resources.js'
import { PgRuns } from './runs.js'
import { PgAudit, PgCallLog, PgSpans } from './telemetry.js'
import { PgApprovals, PgLimits } from './policy.js'
import { PgA2a } from './a2a.js'
import { PgSchedules } from './schedules.js'
import { PgConnections } from './connections.js'
import { PgSessions } from './sessions.js'
import { PgTenants } from './tenants.js'

export interface PgStoreOptions {
  /** A libpq-style URL: postgres://user:password@host:port/database?sslmode=… */
  url: string
  /**
   * Schema that holds the tables (created if missing); default: the connection's search_path,
   * normally `public`. Lets several deployments, or tests, share one database.
   */
  schema?: string
  /** Connections in the pool (default 10). */
  poolSize?: number
  /** Milliseconds to wait for a connection, from the pool or the server (default 10 s). */
  connectTimeoutMs?: number
  /** Errors of idle pooled connections (the server restarted, the network dropped); default: ignored. */
  onError?: (err: Error) => void
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/
/** First key of the advisory lock that serialises migrations (the second is the schema's hash). */
const MIGRATION_LOCK = 0x6a7e

/**
 * Applies every migration not applied yet, each in its own transaction, under a session advisory
 * lock: two replicas starting at once take turns, and the second finds nothing left to do. Safe on
 * every start.
 */
export async function migratePg(pool: pg.Pool, schema?: string): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, schema ?? ''])
    try {
      if (schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`)
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
      )
      const applied = new Set(
        (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
          (r) => r.version,
        ),
      )
      // Every version not applied yet, in order: one merged after a higher one still applies.
      for (const m of [...PG_MIGRATIONS].sort((a, b) => a.version - b.version)) {
        if (applied.has(m.version)) continue
        await client.query('BEGIN')
        try {
          await client.query(m.sql)
          await client.query(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            [m.version, m.name, new Date().toISOString()],
          )
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK')
          throw new Error(`PostgreSQL migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
            cause: err,
          })
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, schema ?? ''])
    }
  } finally {
    client.release()
  }
}

/** Where the URL points, without the password: for error messages. */
function serverOf(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`
  } catch {
    return 'the configured server'
  }
}

/**
 * The PostgreSQL store (GATEHOUSE_DATABASE_URL): what several replicas share. Same interfaces
 * and semantics as the SQLite store; one contract suite runs against both.
 */
export async function openPgStore(options: PgStoreOptions): Promise<Store> {
  const { url, schema, poolSize = 10, connectTimeoutMs = 10_000, onError } = options
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new GatewayError('bad_request', 'GATEHOUSE_DATABASE_URL must be a postgres:// or postgresql:// URL')
  if (schema !== undefined && !SCHEMA_NAME.test(schema))
    throw new GatewayError(
      'bad_request',
      `PostgreSQL schema name ${JSON.stringify(schema)} must match ${SCHEMA_NAME}`,
    )
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'gatehouse',
    types: TYPES,
    // Every connection resolves unqualified table names in the store's schema, and reads and
    // writes timestamps in UTC.
    options: `-c TimeZone=UTC${schema ? ` -c search_path=${schema}` : ''}`,
  })
  pool.on('error', (err) => onError?.(err))
  try {
    const enc = (await pool.query<{ server_encoding: string }>('SHOW server_encoding')).rows[0]
    if (enc?.server_encoding !== 'UTF8')
      throw new GatewayError(
        'bad_request',
        `PostgreSQL database at ${serverOf(url)} uses encoding ${enc?.server_encoding}; Gatehouse needs a UTF8 database (CREATE DATABASE … ENCODING 'UTF8')`,
      )
    await migratePg(pool, schema)
  } catch (err) {
    await pool.end().catch(() => {})
    if (err instanceof GatewayError) throw err
    throw new GatewayError(
      'unavailable',
      `cannot open the PostgreSQL store at ${serverOf(url)}: ${(err as Error).message}`,
      { cause: err },
    )
  }
  const db = new Db(pool)
  let closed: Promise<void> | undefined
  return {
    kind: 'postgres',
    tenants: new PgTenants(db),
    keys: new PgKeys(db),
    resources: new PgResources(db),
    audit: new PgAudit(db),
    spans: new PgSpans(db),
    calls: new PgCallLog(db),
    memory: new PgMemory(db),
    webhooks: new PgWebhookOutbox(db),
    runs: new PgRuns(db),
    approvals: new PgApprovals(db),
    limits: new PgLimits(db),
    a2a: new PgA2a(db),
    schedules: new PgSchedules(db),
    connections: new PgConnections(db),
    sessions: new PgSessions(db),
    async ping() {
      await pool.query('SELECT 1')
    },
    close() {
      return (closed ??= pool.end())
    },
  }
}
