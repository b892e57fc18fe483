import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { migrate, openSqliteStore } from '../../src/store/sqlite/index.js'
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js'
import type { Store } from '../../src/store/types.js'
import { storeContract } from './contract.js'
import { outboxContract } from './outbox.contract.js'
import { memoryContract } from './memory.contract.js'
import { runsContract } from './runs.contract.js'
import { policyContract } from './policy.contract.js'
import { a2aContract } from './a2a.contract.js'
import { schedulesContract } from './schedules.contract.js'
import { connectionsContract } from './connections.contract.js'
import { sessionsContract } from './sessions.contract.js'

const dir = mkdtempSync(join(tmpdir(), 'gh-store-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

storeContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `s${n++}.db`) }))
storeContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
memoryContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `m${n++}.db`) }))
memoryContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
outboxContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `o${n++}.db`) }))
runsContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `r${n++}.db`) }))
runsContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
policyContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `p${n++}.db`) }))
policyContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
a2aContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `a${n++}.db`) }))
schedulesContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `t${n++}.db`) }))
schedulesContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
/** The database file of each file store, so the suite can grep the bytes on disk (the WAL included). */
const files = new WeakMap<Store, string>()
connectionsContract(
  'sqlite (file, WAL)',
  async () => {
    const path = join(dir, `c${n++}.db`)
    const store = openSqliteStore({ path })
    files.set(store, path)
    return store
  },
  async (store) => {
    const path = files.get(store)!
    return [path, `${path}-wal`]
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'))
      .join('\n')
  },
)
connectionsContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
sessionsContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `x${n++}.db`) }))
sessionsContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))

describe('sqlite migrations', () => {
  it('apply a version that landed below the highest applied one (changes merged in another order)', () => {
    const db = new Database(':memory:')
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)')
    // A database migrated by a build that had every version but the lowest-but-one.
    const skipped = MIGRATIONS.filter((m) => m.version !== 1 && m.version !== 2)[0]!
    for (const m of MIGRATIONS.filter((x) => x !== skipped)) {
      db.exec(m.sql)
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, '')
    }
    migrate(db)
    const versions = (
      db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]
    ).map((r) => r.version)
    expect(versions).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b))
    migrate(db) // idempotent
    db.close()
  })
})
