import { chmodSync } from 'node:fs'
import Database from 'better-sqlite3'
import type { Store } from '../types.js'
import { MIGRATIONS } from './migrations.js'
import { SqliteTenants } from './tenants.js'
import { SqliteKeys } from './keys.js'
import { SqliteResources } from './resources.js'
import { SqliteAudit, SqliteSpans, SqliteCallLog } from './telemetry.js'
import { SqliteMemory } from './memory.js'
import { SqliteWebhookOutbox } from './outbox.js'
import { SqliteRuns } from './runs.js'
import { SqliteApprovals, SqliteLimits } from './policy.js'
import { SqliteA2a } from './a2a.js'
import { SqliteSchedules } from './schedules.js'
import { SqliteConnections } from './connections.js'
import { SqliteSessions } from './sessions.js'
import { inlineWriter, workerWriter } from './writer.js'

export interface SqliteStoreOptions {
  /** File path, or ':memory:' for tests. */
  path: string
  /** Milliseconds to wait on a locked database before failing (another process writing). */
  busyTimeoutMs?: number
  /** Write audit rows and spans from a worker thread (default for file databases). */
  offThreadWrites?: boolean
}

/**
 * Applies every migration not applied yet, in version order, one transaction each; safe to call on
 * every start. Gaps are tolerated: a version that lands after a higher one (changes merged in
 * another order) is still applied.
 */
export function migrate(db: Database.Database): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)',
  )
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
      (r) => r.version,
    ),
  )
  for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue
    db.transaction(() => {
      db.exec(m.sql)
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date().toISOString(),
      )
    })()
  }
}

/** The embedded default store: one SQLite file in WAL mode. */
export function openSqliteStore({
  path,
  busyTimeoutMs = 5000,
  offThreadWrites = path !== ':memory:',
}: SqliteStoreOptions): Store {
  const db = new Database(path)
  // The database holds key hashes and audit rows: readable by the gateway's user only.
  if (path !== ':memory:') chmodSync(path, 0o600)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('foreign_keys = ON')
  db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`)
  migrate(db)
  const writer = offThreadWrites ? workerWriter(path, busyTimeoutMs) : inlineWriter(db)
  return {
    kind: 'sqlite',
    tenants: new SqliteTenants(db),
    keys: new SqliteKeys(db),
    resources: new SqliteResources(db),
    audit: new SqliteAudit(db, writer),
    spans: new SqliteSpans(db, writer),
    calls: new SqliteCallLog(writer),
    memory: new SqliteMemory(db),
    webhooks: new SqliteWebhookOutbox(db),
    runs: new SqliteRuns(db),
    approvals: new SqliteApprovals(db),
    limits: new SqliteLimits(db),
    a2a: new SqliteA2a(db),
    schedules: new SqliteSchedules(db),
    connections: new SqliteConnections(db),
    sessions: new SqliteSessions(db),
    async ping() {
      db.prepare('SELECT 1').get()
    },
    async close() {
      await writer.close()
      if (db.open) db.close()
    },
  }
}
