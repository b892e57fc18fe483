import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { storeContract } from './contract.js'
import { outboxContract } from './outbox.contract.js'
import { memoryContract } from './memory.contract.js'
import { runsContract } from './runs.contract.js'

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
