import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { storeContract } from './contract.js'

const dir = mkdtempSync(join(tmpdir(), 'gh-store-'))
let n = 0
afterAll(() => rmSync(dir, { recursive: true, force: true }))

storeContract('sqlite (file, WAL)', async () => openSqliteStore({ path: join(dir, `s${n++}.db`) }))
storeContract('sqlite (memory)', async () => openSqliteStore({ path: ':memory:' }))
