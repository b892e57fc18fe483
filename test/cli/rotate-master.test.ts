import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { openPgStore } from '../../src/store/pg/index.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { ConnectionStore } from '../../src/store/connections.js'
import type { Store } from '../../src/store/types.js'
import {
  connectionAad,
  localKeyProvider,
  oauthClientAad,
  openEnvelope,
  openString,
  sealEnvelope,
  sealString,
  type KeyProvider,
} from '../../src/vault/envelope.js'
import { loadMasterKey, masterKeyFrom, type MasterKey } from '../../src/vault/master-key.js'
import { rotateMaster } from '../../src/vault/rotate.js'
import { seal } from '../../src/vault/seal.js'
import { usePostgres } from '../helpers/postgres.js'
import { runCli } from '../helpers/process.js'

/** No ambient gatehouse settings leak into the child processes. */
const CLEAN_ENV = {
  GATEHOUSE_MASTER_KEY: '',
  GATEHOUSE_MASTER_KEYS_PREVIOUS: '',
  GATEHOUSE_DATA: '',
  GATEHOUSE_DATABASE_URL: '',
}
const cli = (args: string[], env: Record<string, string> = {}) =>
  runCli(['keys', 'rotate-master', ...args], { env: { ...CLEAN_ENV, ...env } })

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
function dataDir(master?: MasterKey): string {
  const d = mkdtempSync(join(tmpdir(), 'gh-rotate-'))
  dirs.push(d)
  if (master) writeFileSync(join(d, 'master.key'), master.key.toString('base64') + '\n', { mode: 0o600 })
  return d
}
const key = () => masterKeyFrom(randomBytes(32))
const b64 = (k: MasterKey) => k.key.toString('base64')
const tokensOf = (id: string) =>
  JSON.stringify({ access_token: `gho_${id}_secret`, refresh_token: `ghr_${id}` })

/** Connections in two tenants, an OAuth client with a secret and one without, a sealed manifest secret. */
async function seed(store: Store, keys: KeyProvider, master: MasterKey, n = 5): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const base = {
      id: `conn_${i}`,
      tenant: i % 2 ? 'globex' : 'acme',
      userId: `user:u${i}`,
      connector: 'github',
    }
    await store.connections.save({
      ...base,
      provider: 'https://github.com',
      scopes: ['repo'],
      hasRefreshToken: true,
      sealed: await sealEnvelope(keys, tokensOf(base.id), connectionAad(base)),
    })
    ids.push(base.id)
  }
  const client = { tenant: 'acme', connector: 'github', issuer: 'https://github.com' }
  await store.connections.putClient({
    ...client,
    clientId: 'cid',
    sealedSecret: await sealString(keys, 'client-secret-1', oauthClientAad(client)),
    registration: {},
    createdAt: new Date().toISOString(),
  })
  await store.connections.putClient({
    ...client,
    issuer: 'https://slack.com',
    clientId: 'public',
    registration: {},
    createdAt: new Date().toISOString(),
  })
  await store.tenants.ensure(systemContext(), 'acme')
  await store.resources.apply(systemContext('acme'), [
    {
      kind: 'Connector',
      tenant: 'acme',
      name: 'gh',
      spec: {
        transport: 'http',
        url: 'https://x.invalid/mcp',
        headers: { a: { sealed: seal(master, 'v') } },
      },
    },
  ])
  return ids
}

/** Every connection and the client secret open with `only` (and nothing else); returns the key ids seen. */
async function expectOpensWith(store: Store, only: MasterKey): Promise<string[]> {
  const keys = localKeyProvider([only])
  const seen: string[] = []
  for (const c of await store.connections.scan(undefined, 100)) {
    expect(await openEnvelope(keys, c.sealed, connectionAad(c))).toBe(tokensOf(c.id))
    expect(c.version).toBe(1)
    seen.push(c.sealed.keyId)
  }
  const [client] = await store.connections.scanClients()
  expect(await openString(keys, client!.sealedSecret!, oauthClientAad(client!))).toBe('client-secret-1')
  return seen
}

describe('gatehouse keys rotate-master (SQLite)', () => {
  it('--new-key: a new DATA/master.key, every envelope re-wrapped under it; a second run re-wraps nothing', async () => {
    const old = key()
    const dir = dataDir(old)
    const store = openSqliteStore({ path: join(dir, 'gatehouse.db'), offThreadWrites: false })
    await seed(store, localKeyProvider([old]), old)
    await store.close()

    const first = await cli(['--data', dir, '--new-key'])
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    const fresh = loadMasterKey(dir, {})
    expect(fresh.id).not.toBe(old.id)
    expect(first.stdout).toContain(`new master key ${fresh.id}`)
    expect(first.stdout).toContain(`master key: primary ${fresh.id}, previous ${old.id}`)
    expect(first.stdout).toContain('connections: 5 re-wrapped, 0 already under the primary key')
    expect(first.stdout).toContain(
      'oauth client secrets: 1 re-wrapped, 0 already under the primary key, 1 without',
    )
    expect(first.stdout).toContain(
      `manifest secrets sealed with an older key: 1: acme/Connector/gh spec.headers.a (key ${old.id})`,
    )
    expect(first.stdout).toMatch(/not re-sealed by rotate-master; keep the old key/)
    expect(first.stdout).not.toContain('gho_')

    const after = openSqliteStore({ path: join(dir, 'gatehouse.db'), offThreadWrites: false })
    try {
      expect(new Set(await expectOpensWith(after, fresh))).toEqual(new Set([fresh.id]))
    } finally {
      await after.close()
    }

    const second = await cli(['--data', dir])
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('connections: 0 re-wrapped, 5 already under the primary key')
    expect(second.stdout).toContain('oauth client secrets: 0 re-wrapped, 1 already under the primary key')
  })

  it('env keys: the new primary in GATEHOUSE_MASTER_KEY, the old one in GATEHOUSE_MASTER_KEYS_PREVIOUS; an unreadable row is named and fails the run', async () => {
    const [old, fresh, lost] = [key(), key(), key()]
    const dir = dataDir()
    const store = openSqliteStore({ path: join(dir, 'gatehouse.db'), offThreadWrites: false })
    await seed(store, localKeyProvider([old]), old, 3)
    const orphan = { id: 'conn_lost', tenant: 'acme', userId: 'user:x', connector: 'slack' }
    await store.connections.save({
      ...orphan,
      provider: 'https://slack.com',
      scopes: [],
      hasRefreshToken: false,
      sealed: await sealEnvelope(localKeyProvider([lost]), 'xoxp-never-shown', connectionAad(orphan)),
    })
    await store.close()

    const env = { GATEHOUSE_MASTER_KEY: b64(fresh), GATEHOUSE_MASTER_KEYS_PREVIOUS: b64(old) }
    const run = await cli(['--data', dir], env)
    expect(run.code).toBe(1)
    expect(run.stdout).toContain(
      'connections: 3 re-wrapped, 0 already under the primary key, 0 deleted meanwhile, 1 failed',
    )
    expect(run.stderr).toBe(
      `gatehouse: cannot re-wrap connection conn_lost (acme/slack): envelope is wrapped under master key ${lost.id}, which this gateway does not have; add that key to GATEHOUSE_MASTER_KEYS_PREVIOUS or DATA/master.keys.previous\n`,
    )
    expect(run.stdout + run.stderr).not.toContain('xoxp-never-shown')
    const after = openSqliteStore({ path: join(dir, 'gatehouse.db'), offThreadWrites: false })
    try {
      await after.connections.delete(systemContext('acme'), 'conn_lost')
      await expectOpensWith(after, fresh)
    } finally {
      await after.close()
    }
    expect((await cli(['--data', dir], env)).stdout).toContain('connections: 0 re-wrapped, 3 already')
    // --new-key cannot replace a key that comes from the environment.
    const refused = await cli(['--data', dir, '--new-key'], env)
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(
      /^gatehouse: the master key comes from GATEHOUSE_MASTER_KEY, so --new-key cannot replace it/,
    )
  })

  it('refuses a directory without a database or a master key, in one line', async () => {
    const empty = dataDir()
    const res = await cli(['--data', empty])
    expect(res.code).toBe(2)
    expect(res.stderr).toBe(
      `gatehouse: no Gatehouse database at ${join(empty, 'gatehouse.db')}; pass the gateway's --data DIR, or set GATEHOUSE_DATABASE_URL for PostgreSQL\n`,
    )
    const noKey = dataDir()
    await openSqliteStore({ path: join(noKey, 'gatehouse.db'), offThreadWrites: false }).close()
    expect((await cli(['--data', noKey])).stderr).toMatch(
      /^gatehouse: no master key: neither GATEHOUSE_MASTER_KEY nor/,
    )
    expect((await cli(['--data', noKey, '--bogus'])).stderr).toMatch(/unknown option --bogus/)
  })
})

describe('rotateMaster: rows changed while it runs', () => {
  it('a row updated between the scan and the re-wrap is read again and re-wrapped; a deleted one is counted', async () => {
    const [old, fresh] = [key(), key()]
    const store = openSqliteStore({ path: ':memory:' })
    try {
      await seed(store, localKeyProvider([old]), old, 3)
      const keys = localKeyProvider([fresh, old])
      let raced = 0
      // The broker refreshes conn_0 (under the old key, as a replica not restarted yet would) and
      // deletes conn_2 just before rotation's compare-and-swap of each.
      const racing: ConnectionStore = Object.create(store.connections) as ConnectionStore
      racing.rewrap = async (id, version, sealed) => {
        if (id === 'conn_0' && raced++ === 0) {
          const c = (await store.connections.get(systemContext('acme'), id))!
          const again = await sealEnvelope(localKeyProvider([old]), tokensOf(id), connectionAad(c))
          await store.connections.update(id, version, { sealed: again })
        }
        if (id === 'conn_2') await store.connections.delete(systemContext('acme'), id)
        return store.connections.rewrap(id, version, sealed)
      }
      const report = await rotateMaster({ connections: racing, keys })
      expect(report.connections).toEqual({ rewrapped: 2, current: 0, gone: 1, failed: 0 })
      const c0 = (await store.connections.get(systemContext('acme'), 'conn_0'))!
      expect(c0).toMatchObject({ version: 2, sealed: { keyId: fresh.id } })
      expect(await openEnvelope(localKeyProvider([fresh]), c0.sealed, connectionAad(c0))).toBe(
        tokensOf('conn_0'),
      )
    } finally {
      await store.close()
    }
  })
})

describe('gatehouse keys rotate-master (PostgreSQL)', () => {
  const pgsql = usePostgres()

  it('re-wraps every connection of GATEHOUSE_DATABASE_URL under the env primary; idempotent', async () => {
    const [old, fresh] = [key(), key()]
    const url = await pgsql.server().createDatabase()
    const store = await openPgStore({ url, poolSize: 2 })
    try {
      await seed(store, localKeyProvider([old]), old, 4)
    } finally {
      await store.close()
    }
    const env = {
      GATEHOUSE_DATABASE_URL: url,
      GATEHOUSE_MASTER_KEY: b64(fresh),
      GATEHOUSE_MASTER_KEYS_PREVIOUS: b64(old),
    }
    const dir = dataDir() // no SQLite file needed: the store is PostgreSQL
    const first = await cli(['--data', dir], env)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toContain('connections: 4 re-wrapped, 0 already under the primary key')
    const after = await openPgStore({ url, poolSize: 2 })
    try {
      expect(new Set(await expectOpensWith(after, fresh))).toEqual(new Set([fresh.id]))
    } finally {
      await after.close()
    }
    const second = await cli(['--data', dir], env)
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('connections: 0 re-wrapped, 4 already under the primary key')
  })
})
