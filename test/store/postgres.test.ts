import { randomBytes } from 'node:crypto'
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createContext, systemContext, type CallContext, type Role } from '../../src/context.js'
import { openPgStore } from '../../src/store/pg/index.js'
import { PG_MIGRATIONS } from '../../src/store/pg/migrations.js'
import type { NewRun } from '../../src/store/runs.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { Store } from '../../src/store/types.js'
import { masterKeyFrom } from '../../src/vault/master-key.js'
import { seal } from '../../src/vault/seal.js'
import { findPostgresBin, usePostgres } from '../helpers/postgres.js'
import { storeContract } from './contract.js'
import { memoryContract } from './memory.contract.js'
import { outboxContract } from './outbox.contract.js'
import { runsContract } from './runs.contract.js'
import { policyContract } from './policy.contract.js'
import { a2aContract } from './a2a.contract.js'
import { schedulesContract } from './schedules.contract.js'
import { connectionsContract } from './connections.contract.js'
import { sessionsContract } from './sessions.contract.js'

// One server for this file, one database in it, one fresh schema per store the suites open.
const pgsql = usePostgres()
const open = async (): Promise<Store> => pgsql.server().openStore(pgsql.url())

storeContract('postgres', open)
memoryContract('postgres', open)
outboxContract('postgres', open)
runsContract('postgres', open)
policyContract('postgres', open)
a2aContract('postgres', open)
schedulesContract('postgres', open)
/** Each store's schema, so the suite can read the connection tables' text. */
const schemas = new WeakMap<Store, string>()
connectionsContract(
  'postgres',
  async () => {
    const schema = `c_${randomBytes(6).toString('hex')}`
    const store = await openPgStore({ url: pgsql.url(), schema, poolSize: 8 })
    schemas.set(store, schema)
    const close = store.close.bind(store)
    store.close = async () => {
      await close()
      await onPg((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
    }
    return store
  },
  async (store) => {
    const schema = schemas.get(store)!
    const tables = ['connections', 'oauth_states', 'oauth_clients']
    const texts = await onPg(async (c) => {
      const out: string[] = []
      for (const t of tables)
        out.push(
          ...(await c.query<{ row: string }>(`SELECT t::text AS row FROM ${schema}.${t} t`)).rows.map(
            (r) => r.row,
          ),
        )
      return out
    })
    return texts.join('\n')
  },
)

/** Runs `fn` on a fresh client of the test database. */
async function onPg<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgsql.url() })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}
sessionsContract('postgres', open)

/** Two stores on one schema: two replicas of a gateway. */
async function replicas(n: number): Promise<{ stores: Store[]; drop(): Promise<void> }> {
  const schema = `r_${randomBytes(6).toString('hex')}`
  const stores = await Promise.all(
    Array.from({ length: n }, () => openPgStore({ url: pgsql.url(), schema, poolSize: 4 })),
  )
  return {
    stores,
    async drop() {
      await Promise.all(stores.map((s) => s.close()))
      const c = new pg.Client({ connectionString: pgsql.url() })
      await c.connect()
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await c.end()
    },
  }
}

describe('postgres store: several processes on one database', () => {
  const op = systemContext('default')
  const alice = createContext({
    tenant: 'acme',
    principal: { kind: 'service', id: 'alice' },
    roles: ['member'],
  })
  const newRun = (id: string, threadId?: string): NewRun => ({
    id,
    agent: 'a',
    input: {},
    multitaskStrategy: 'enqueue',
    caller: { principal: { kind: 'service', id: 'alice' }, roles: ['member'], scopes: [] },
    ...(threadId ? { threadId } : {}),
  })

  it('replicas starting at once migrate once (advisory lock), and agree on the schema', async () => {
    const { stores, drop } = await replicas(4)
    try {
      const c = new pg.Client({ connectionString: pgsql.url() })
      await c.connect()
      const schema = (
        await c.query<{ s: string }>(
          "SELECT table_schema AS s FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema LIKE 'r\\_%'",
        )
      ).rows.map((r) => r.s)
      const versions = (await c.query(`SELECT version FROM ${schema[0]}.schema_migrations ORDER BY version`))
        .rows
      await c.end()
      expect(versions.map((v) => v.version)).toEqual(
        PG_MIGRATIONS.map((m) => m.version).sort((a, b) => a - b),
      )
      for (const s of stores) await s.ping()
    } finally {
      await drop()
    }
  })

  it('concurrent claimers share no run (FOR UPDATE SKIP LOCKED) and a thread runs one at a time', async () => {
    const { stores, drop } = await replicas(3)
    try {
      const [first] = stores as [Store]
      await first.tenants.ensure(op, 'acme')
      await first.runs.createThread(alice, { id: 'th' })
      for (let i = 0; i < 40; i++) await first.runs.create(alice, newRun(`free-${i}`))
      for (let i = 0; i < 5; i++) await first.runs.create(alice, newRun(`th-${i}`, 'th'))
      const claims = await Promise.all(
        stores.flatMap((s, w) => [1, 2].map((k) => s.runs.claim(`w${w}-${k}`, 1_000, 60_000, 50))),
      )
      const ids = claims.flat().map((r) => r.id)
      expect(new Set(ids).size).toBe(ids.length)
      expect(ids.filter((id) => id.startsWith('free-')).sort()).toHaveLength(40)
      // Only the oldest run of the thread, whoever got it.
      expect(ids.filter((id) => id.startsWith('th-'))).toEqual(['th-0'])
    } finally {
      await drop()
    }
  })

  it('a write by a worker that lost its lease fails even while the new owner writes at the same time', async () => {
    const { stores, drop } = await replicas(2)
    try {
      const [s1, s2] = stores as [Store, Store]
      await s1.tenants.ensure(op, 'acme')
      await s1.runs.create(alice, newRun('r1'))
      await s1.runs.claim('old', 1_000, 100, 1)
      // The lease expired: s2 takes the run over while s1's worker still writes.
      const [taken] = await s2.runs.claim('new', 2_000, 60_000, 1)
      expect(taken).toMatchObject({ id: 'r1', attempts: 2 })
      const writes = await Promise.allSettled([
        s1.runs.appendEvents('old', 'r1', [{ type: 'token', data: 'stale' }]),
        s2.runs.appendEvents('new', 'r1', [{ type: 'token', data: 'fresh' }]),
        s1.runs.finish('old', 'r1', { status: 'succeeded' }),
      ])
      expect(writes[0]).toMatchObject({ status: 'rejected', reason: { name: 'LeaseLostError' } })
      expect(writes[1].status).toBe('fulfilled')
      expect(writes[2]).toEqual({ status: 'fulfilled', value: undefined })
      const events = await s2.runs.events(alice, 'r1', 0)
      expect(events.map((e) => e.data)).not.toContain('stale')
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1))
    } finally {
      await drop()
    }
  })

  it('interrupt strategy against a concurrent claim: the displaced run is cancelled exactly once', async () => {
    const { stores, drop } = await replicas(2)
    try {
      const [s1, s2] = stores as [Store, Store]
      await s1.tenants.ensure(op, 'acme')
      await s1.runs.createThread(alice, { id: 'th' })
      await s1.runs.create(alice, newRun('a', 'th'))
      const [claimed, created] = await Promise.all([
        s2.runs.claim('w', 1_000, 60_000, 10),
        s1.runs.create(alice, { ...newRun('b', 'th'), multitaskStrategy: 'interrupt' }),
      ])
      expect(created.displaced).toEqual(['a'])
      expect(await s1.runs.get(alice, 'a')).toMatchObject({ status: 'cancelled' })
      const ends = (await s1.runs.events(alice, 'a', 0)).filter((e) => e.type === 'end')
      expect(ends).toHaveLength(1)
      // If the claim won the race, its worker is told to stop.
      if (claimed.some((r) => r.id === 'a'))
        expect((await s2.runs.heartbeat('w', ['a'], 1_500, 60_000)).lost).toEqual(['a'])
    } finally {
      await drop()
    }
  })

  it('the outbox and the memory store take concurrent writers', async () => {
    const { stores, drop } = await replicas(2)
    try {
      const [s1, s2] = stores as [Store, Store]
      await s1.tenants.ensure(op, 'acme')
      const admin = createContext({
        tenant: 'acme',
        principal: { kind: 'service', id: 'ad' },
        roles: ['admin'],
      })
      for (let i = 0; i < 30; i++)
        await s1.webhooks.enqueue(admin, {
          id: `d${i}`,
          url: 'https://example.invalid/',
          payload: '{}',
          nextAttemptAtMs: 1,
        })
      const claims = await Promise.all([
        s1.webhooks.claimDue('a', 10, 20, 1000),
        s2.webhooks.claimDue('b', 10, 20, 1000),
        s1.webhooks.claimDue('c', 10, 20, 1000),
      ])
      const ids = claims.flat().map((d) => d.id)
      expect(ids).toHaveLength(30)
      expect(new Set(ids).size).toBe(30)
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? s1 : s2).memory.put(admin, { namespace: ['n'], key: 'same', value: { i } }),
        ),
      )
      expect(await s1.memory.search(admin, { namespacePrefix: ['n'] })).toHaveLength(1)
    } finally {
      await drop()
    }
  })
})

describe('postgres store: opening', () => {
  it('refuses a URL that is not postgres:// and names an unreachable server in one clear error', async () => {
    await expect(openPgStore({ url: 'mysql://x' })).rejects.toThrow(/postgres:\/\/ or postgresql:\/\//)
    await expect(openPgStore({ url: pgsql.url(), schema: 'Bad-Name' })).rejects.toThrow(/schema name/)
    const port = pgsql.server().port
    const err = await openPgStore({
      url: `postgres://nobody:secret@127.0.0.1:${port}/missing_db`,
      connectTimeoutMs: 2000,
    }).then(
      () => new Error('opened'),
      (e: unknown) => e as Error,
    )
    expect(err).toBeInstanceOf(Error)
    expect(err.message).toMatch(/cannot open the PostgreSQL store at 127\.0\.0\.1:\d+\/missing_db/)
    expect(err.message).not.toContain('secret')
  })

  it('the test harness fails with an install hint when the server binaries are missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-nopg-'))
    try {
      expect(() => findPostgresBin(dir, [join(dir, 'none')])).toThrow(/install the `postgresql` package/)
      // A PATH entry with all three binaries is found (symlinks resolved to the real directory).
      const real = join(dir, 'real')
      mkdirSync(real)
      for (const b of ['initdb', 'pg_ctl', 'postgres']) writeFileSync(join(real, b), '', { mode: 0o755 })
      const onPath = join(dir, 'bin')
      mkdirSync(onPath)
      symlinkSync(join(real, 'initdb'), join(onPath, 'initdb'))
      expect(findPostgresBin(onPath, [])).toBe(real)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/*
 * Differential checks beyond the contract suites (memory owners have none yet; approvals, limits
 * and A2A get every field and order compared): the same scenario on SQLite and on PostgreSQL must
 * give the same answers, with a few absolute checks so that agreement is not vacuous.
 */
describe('postgres store: the same answers as SQLite, field by field', () => {
  const T0 = Date.parse('2031-05-01T10:00:00.000Z')
  const iso = (ms: number) => new Date(ms).toISOString()
  const ctxOf = (tenant: string, id: string, role: Role = 'member'): CallContext =>
    createContext({ tenant, principal: { kind: 'service', id }, roles: [role] })
  const op = systemContext('default')
  const acme = ctxOf('acme', 'alice')
  const bob = ctxOf('acme', 'bob')
  const acmeAdmin = ctxOf('acme', 'root', 'admin')
  const globex = ctxOf('globex', 'gina', 'admin')
  const master = masterKeyFrom(randomBytes(32))
  const sealed = seal(master, 'token-123', 'gatehouse/push')

  afterEach(() => {
    vi.useRealTimers()
  })

  /** Runs `steps` on a store, recording every answer (errors as their code and message). */
  async function record(store: Store, steps: (s: Store, note: (v: unknown) => void) => Promise<void>) {
    const out: unknown[] = []
    const note = (v: unknown) => out.push(JSON.parse(JSON.stringify(v ?? null)))
    try {
      await steps(store, note)
    } finally {
      await store.close()
    }
    return out
  }
  const attempt = async (p: Promise<unknown>) =>
    p.then(
      (v) => v,
      (e: { code?: string; message: string }) => ({ error: e.code ?? 'error', message: e.message }),
    )

  async function both(steps: (s: Store, note: (v: unknown) => void) => Promise<void>) {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const onSqlite = await record(openSqliteStore({ path: ':memory:' }), steps)
    vi.setSystemTime(T0)
    const onPg = await record(await open(), steps)
    expect(onPg).toEqual(onSqlite)
    return onPg
  }

  it('approvals: create (deduped by request key), decide once, reuse, use once, expire, notify, page', async () => {
    const out = await both(async (s, note) => {
      for (const t of ['acme', 'globex']) await s.tenants.ensure(op, t)
      const base = {
        tool: 'gh__deploy',
        connector: 'gh',
        toolName: 'deploy',
        args: { env: 'prod', n: 1 },
        argsHash: 'h1',
        requester: { kind: 'service' as const, id: 'alice' },
        requesterRoles: ['member' as Role],
        requesterKey: 'service:alice',
        approvers: { roles: ['approver' as Role], principals: [] },
        rule: 'p/r1',
        expiresAt: iso(T0 + 60_000),
      }
      note(await s.approvals.create(acme, { ...base, id: 'ap1', runId: 'run-1', requestKey: 'run-1:0' }))
      note(await s.approvals.create(acme, { ...base, id: 'ap1b', runId: 'run-1', requestKey: 'run-1:0' }))
      note(await attempt(s.approvals.create(acme, { ...base, id: 'ap1' })))
      vi.setSystemTime(T0 + 1000)
      note(await s.approvals.create(acme, { ...base, id: 'ap2', ruleReason: 'prod needs a human' }))
      vi.setSystemTime(T0 + 2000)
      note(await s.approvals.create(acme, { ...base, id: 'ap3', expiresAt: iso(T0 + 5000) }))
      note(await s.approvals.get(globex, 'ap1'))
      note(await s.approvals.byRequestKey(acme, 'run-1:0'))
      note(
        await s.approvals.reusable(acme, {
          requesterKey: 'service:alice',
          tool: 'gh__deploy',
          argsHash: 'h1',
          nowIso: iso(T0 + 3000),
        }),
      )
      const d = {
        status: 'approved' as const,
        decision: 'edit' as const,
        decider: 'service:root',
        editedArgs: { env: 'staging' },
        channel: 'api',
      }
      note(await s.approvals.decide(acme, 'ap2', d, iso(T0 + 3000)))
      note(
        await s.approvals.decide(
          acme,
          'ap2',
          { ...d, status: 'rejected', decision: 'reject' },
          iso(T0 + 3001),
        ),
      )
      note(await s.approvals.decide(globex, 'ap2', d, iso(T0 + 3002)))
      note(await s.approvals.decide(acme, 'ap1', { ...d, reason: 'ok' }, iso(T0 + 3003)))
      note(await s.approvals.markUsed(acme, 'ap2', iso(T0 + 4000)))
      note(await s.approvals.markUsed(acme, 'ap2', iso(T0 + 4001)))
      await s.approvals.setNotice(acme, 'ap3', { channel: 'C1', ts: '1.2' })
      note(await s.approvals.expireDue(iso(T0 + 10_000), 10))
      note(await s.approvals.expireDue(iso(T0 + 10_000), 10))
      note(await s.approvals.unnotified(10))
      await s.approvals.markNotified('ap1')
      note(await s.approvals.unnotified(10))
      const p1 = await s.approvals.list(acme, { limit: 2 })
      note(p1)
      note(await s.approvals.list(acme, { limit: 2, before: p1.next! }))
      note(await s.approvals.list(acme, { status: 'expired' }))
      note(await s.approvals.list(acme, { runId: 'run-1', requesterKey: 'service:alice' }))
      note(await s.approvals.list(globex))
    })
    expect(out[1]).toMatchObject({ created: false, approval: { id: 'ap1' } })
    expect(out[2]).toMatchObject({ error: 'conflict' })
    expect(out[8]).toMatchObject({
      changed: true,
      approval: { status: 'approved', editedArgs: { env: 'staging' } },
    })
    expect(out[9]).toMatchObject({ changed: false, approval: { status: 'approved' } })
    expect(out[12]).toBe(true)
    expect(out[13]).toBe(false)
    expect((out[14] as { id: string }[]).map((a) => a.id)).toEqual(['ap3'])
  })

  it('limits: reservations never pass the limit, refunds, token buckets refill', async () => {
    const out = await both(async (s, note) => {
      for (let i = 0; i < 4; i++) note(await s.limits.reserve('k', '2031-05', 1, 3))
      note(await s.limits.add('k', '2031-05', -1))
      note(await s.limits.reserve('k', '2031-05', 1, 3))
      note(await s.limits.used('k', '2031-05'))
      note(await s.limits.used('k', '2031-06'))
      note(await s.limits.add('cost', '2031-05', 1.5))
      note(await s.limits.add('cost', '2031-05', 2.25))
      for (let i = 0; i < 3; i++) note(await s.limits.take('b', 2, 0.001, T0))
      note(await s.limits.take('b', 2, 0.001, T0 + 500))
      note(await s.limits.take('b', 2, 0.001, T0 + 1000))
      note(await s.limits.take('b', 2, 0.001, T0 + 900))
      note(await s.limits.take('b', 5, 0.01, T0 + 100_000, 3))
    })
    expect(out.slice(0, 4)).toEqual([
      { ok: true, used: 1 },
      { ok: true, used: 2 },
      { ok: true, used: 3 },
      { ok: false, used: 3 },
    ])
    expect(out[9]).toBe(3.75)
    expect(out[12]).toEqual({ ok: false, retryAfterMs: 1000 })
    // Concurrent reservations on PostgreSQL: exactly the limit gets through.
    const store = await open()
    try {
      const results = await Promise.all(
        Array.from({ length: 25 }, () => store.limits.reserve('c', 'p', 1, 10)),
      )
      expect(results.filter((r) => r.ok)).toHaveLength(10)
      expect(await store.limits.used('c', 'p')).toBe(10)
    } finally {
      await store.close()
    }
  })

  it('a2a: push configs, the backlog cursor, message ids, the task listing with state filters and pages', async () => {
    const out = await both(async (s, note) => {
      for (const t of ['acme', 'globex']) await s.tenants.ensure(op, t)
      const caller = {
        principal: { kind: 'service' as const, id: 'alice' },
        roles: ['member' as Role],
        scopes: [],
      }
      const mk = (id: string, agent = 'ag', threadId?: string): NewRun => ({
        id,
        agent,
        input: {},
        multitaskStrategy: 'enqueue',
        caller,
        ...(threadId ? { threadId } : {}),
      })
      await s.runs.createThread(acme, { id: 'th' })
      for (let i = 0; i < 5; i++) {
        vi.setSystemTime(T0 + i * 1000)
        await s.runs.create(i === 4 ? bob : acme, mk(`t${i}`, 'ag', i === 1 ? 'th' : undefined))
      }
      await s.runs.create(acme, mk('other', 'ag2'))
      vi.setSystemTime(T0 + 10_000)
      const claimed = await s.runs.claim('w', T0, 60_000, 10)
      note(claimed.map((r) => r.id))
      await s.runs.finish('w', 't0', { status: 'failed', error: { code: 'agent_error', message: 'x' } })
      await s.runs.finish('w', 't2', { status: 'succeeded', output: 1 })
      await s.runs.interrupt('w', 't3', { type: 'input', question: '?' })

      const cfg = {
        taskId: 't1',
        id: 'c1',
        url: 'https://example.invalid/push',
        wireVersion: '1.0' as const,
        notifiedSeq: 0,
        lastState: '',
      }
      note(await attempt(s.a2a.putPushConfig(acme, { ...cfg, sealedToken: 'plain' })))
      note(
        await s.a2a.putPushConfig(acme, {
          ...cfg,
          sealedToken: sealed,
          authScheme: 'Bearer',
          sealedCredentials: sealed,
        }),
      )
      vi.setSystemTime(T0 + 11_000)
      note(await s.a2a.putPushConfig(acme, { ...cfg, url: 'https://example.invalid/v2' }))
      note(await s.a2a.putPushConfig(acme, { ...cfg, taskId: 'gone', id: 'c2', notifiedSeq: 3 }))
      note(await s.a2a.putPushConfig(acme, { ...cfg, taskId: 't2', id: 'c3' }))
      note(await s.a2a.listPushConfigs(acme, 't1'))
      note(await s.a2a.getPushConfig(globex, 't1', 'c1'))
      note(await s.a2a.pushBacklog(10))
      await s.a2a.advancePush('acme', 't1', 'c1', 2, 'working', false)
      await s.a2a.advancePush('acme', 't1', 'c1', 1, 'stale', true)
      await s.a2a.advancePush('acme', 't2', 'c3', 99, 'completed', true)
      note(await s.a2a.pushConfigOf('acme', 't1', 'c1'))
      note(await s.a2a.pushBacklog(10))
      note(await s.a2a.deletePushConfig(globex, 't1', 'c1'))
      note(await s.a2a.deletePushConfig(acme, 'gone', 'c2'))

      await s.a2a.rememberMessage(acme, 'm1', 't1')
      await s.a2a.rememberMessage(acme, 'm1', 't2')
      note(await s.a2a.taskOfMessage(acme, 'm1'))
      note(await s.a2a.taskOfMessage(bob, 'm1'))

      const list = (ctx: CallContext, q: Partial<Parameters<Store['a2a']['listTaskIds']>[1]>) =>
        s.a2a.listTaskIds(ctx, { agent: 'ag', pageSize: 10, ...q })
      note(await list(acmeAdmin, {}))
      note(await list(acme, {}))
      note(await list(acmeAdmin, { threadId: 'th' }))
      note(await list(acmeAdmin, { states: [{ status: 'failed', errorCodeIn: ['agent_error'] }] }))
      note(await list(acmeAdmin, { states: [{ status: 'failed', errorCodeNotIn: ['agent_error'] }] }))
      note(
        await list(acmeAdmin, {
          states: [{ status: 'interrupted', interruptTypeIn: ['input'] }, { status: 'succeeded' }],
        }),
      )
      note(await list(acmeAdmin, { states: [{ status: 'running', interruptTypeNotIn: ['input'] }] }))
      note(await list(acmeAdmin, { states: [] }))
      note(await list(acmeAdmin, { updatedAfter: iso(T0 + 5000) }))
      const p1 = await list(acmeAdmin, { pageSize: 2 })
      note(p1)
      const p2 = await list(acmeAdmin, { pageSize: 2, pageToken: p1.next! })
      note(p2)
      note(await list(acmeAdmin, { pageSize: 2, pageToken: p2.next! }))
      note(await attempt(list(acmeAdmin, { pageToken: 'bm90LWpzb24' })))
      note(await list(globex, {}))
    })
    expect(out[0]).toEqual(['t0', 't1', 't2', 't3', 't4', 'other'])
    expect(out[1]).toMatchObject({ error: 'bad_request' })
    // Same update time: by task id ('gone' < 't1' < 't2'); the config of a deleted run is due too.
    expect((out[8] as { id: string; runExists: boolean }[]).map((c) => [c.id, c.runExists])).toEqual([
      ['c2', false],
      ['c1', true],
      ['c3', true],
    ])
    expect(out[9]).toMatchObject({ notifiedSeq: 2, lastState: 'working', done: false })
    expect(out[13]).toBe('t1')
    expect(out[14]).toBeNull()
  })

  it('memory: items are partitioned by owner; admins see every owner and may name one', async () => {
    const out = await both(async (s, note) => {
      await s.memory.put(acme, { namespace: ['n'], key: 'k', value: { who: 'alice' } })
      vi.setSystemTime(T0 + 1000)
      await s.memory.put(bob, { namespace: ['n'], key: 'k', value: { who: 'bob' } })
      await s.memory.put(bob, { namespace: ['n', 'b'], key: 'k2', value: { who: 'bob' } })
      note(await s.memory.get(acme, ['n'], 'k'))
      note(await s.memory.get(bob, ['n'], 'k'))
      note(await s.memory.get(acmeAdmin, ['n'], 'k'))
      note(await s.memory.get(acmeAdmin, ['n'], 'k', { owner: 'service:alice' }))
      note(await s.memory.get(acme, ['n'], 'k', { owner: 'service:bob' }))
      note(await attempt(s.memory.put(acme, { owner: 'service:bob', namespace: ['n'], key: 'k', value: {} })))
      note(
        await s.memory.put(acmeAdmin, {
          owner: 'service:bob',
          namespace: ['n'],
          key: 'k3',
          value: { by: 'admin' },
        }),
      )
      note(await s.memory.search(acme, { namespacePrefix: [] }))
      note(await s.memory.search(acmeAdmin, { namespacePrefix: ['n'] }))
      note(await s.memory.search(acmeAdmin, { namespacePrefix: [], owner: 'service:alice' }))
      note(await s.memory.search(acme, { namespacePrefix: [], owner: 'service:bob' }))
      note(await s.memory.listNamespaces(acme))
      note(await s.memory.listNamespaces(acmeAdmin))
      note(await s.memory.listNamespaces(acme, { owner: 'service:bob' }))
      note(await s.memory.delete(acme, ['n'], 'k', { owner: 'service:bob' }))
      note(await s.memory.delete(acmeAdmin, ['n'], 'k', { owner: 'service:bob' }))
      note(await s.memory.get(bob, ['n'], 'k'))
      note(
        await s.memory.put(acmeAdmin, {
          owner: 'odd\u0000owner',
          namespace: ['z'],
          key: 'k\u0000\u0001',
          value: {},
        }),
      )
      note(await s.memory.search(acmeAdmin, { namespacePrefix: ['z'], owner: 'odd\u0000owner' }))
      note(await attempt(s.memory.search(acmeAdmin, { namespacePrefix: [], owner: 7 as unknown as string })))
    })
    expect(out[0]).toMatchObject({ value: { who: 'alice' } })
    expect(out[0]).not.toHaveProperty('owner')
    expect(out[1]).toMatchObject({ value: { who: 'bob' } })
    expect(out[4]).toBeNull()
    expect(out[5]).toMatchObject({ error: 'not_found' })
    expect(out[17]).toMatchObject({ owner: 'odd\u0000owner', key: 'k\u0000\u0001' })
  })
})
