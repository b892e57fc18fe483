import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createContext, systemContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import type { RunService } from '../../src/runs/service.js'
import { scheduleContext, Scheduler } from '../../src/schedules/scheduler.js'
import type { RunRecord } from '../../src/store/runs.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { Store } from '../../src/store/types.js'
import type { AuditWriter } from '../../src/telemetry/audit.js'
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'

const schedule = (name: string, spec: string) => `apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: ${name} }
spec: ${spec}
`

describe('schedules in a gateway (SQLite)', () => {
  let t: TestGateway
  beforeAll(async () => {
    t = await startTestGateway({ config: { runPollMs: 50 }, manifests: agentManifests() })
    // Load the agent's module once: the first run of an agent pays for its import.
    const warm = await t.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'echo' } })
    await t.api('GET', `/v1/runs/${warm.body.id}/wait?timeout=10`)
  })
  afterAll(async () => t?.close())

  it('a per-second schedule starts one run per tick, on time, on its thread; disable stops it', async () => {
    await t.apply(
      schedule(
        'every',
        '{ cron: "* * * * * *", agent: flex, input: { mode: echo, text: tick }, overlap: enqueue }',
      ),
    )
    await sleep(3300)
    const s = (await t.api('GET', '/v1/schedules/every')).body
    expect(s).toMatchObject({
      name: 'every',
      cron: '* * * * * *',
      timezone: 'UTC',
      agent: 'flex',
      enabled: true,
      overlap: 'enqueue',
      missed: 'skip',
      thread_id: 'schedule:every',
    })
    expect(s.next_ticks).toHaveLength(3)
    const ticks = [...(s.recent_ticks as { tick_at: string; status: string; run_id: string }[])].reverse()
    expect(ticks.length).toBeGreaterThanOrEqual(3)
    expect(ticks.every((k) => k.status === 'started')).toBe(true)
    // Consecutive seconds, none missing, each with its own run.
    const at = ticks.map((k) => Date.parse(k.tick_at))
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBe(1000)
    expect(new Set(ticks.map((k) => k.run_id)).size).toBe(ticks.length)
    expect(s.last_run_id).toBe(ticks.at(-1)!.run_id)
    const runs = (await t.api('GET', '/v1/threads/schedule:every/runs?limit=100')).body.items as RunRecord[]
    expect(runs.map((r) => r.id).sort()).toEqual(expect.arrayContaining(ticks.map((k) => k.run_id).sort()))
    for (const k of ticks) {
      const run = (await t.api('GET', `/v1/runs/${k.run_id}/wait?timeout=10`)).body
      expect(run).toMatchObject({
        status: 'succeeded',
        agent: 'flex',
        thread_id: 'schedule:every',
        output: { text: 'tick' },
      })
      // Started within a few ms of its tick (the bound leaves room for a loaded CI machine).
      expect(Date.parse(run.created_at) - Date.parse(k.tick_at), JSON.stringify([k, run])).toBeLessThan(250)
      expect(Date.parse(run.created_at)).toBeGreaterThanOrEqual(Date.parse(k.tick_at))
    }

    const off = await t.api('PATCH', '/v1/schedules/every', { enabled: false })
    expect(off.status).toBe(200)
    expect(off.body).toMatchObject({ enabled: false, next_ticks: [] })
    const before = (await t.api('GET', '/v1/schedules/every')).body.recent_ticks.length
    await sleep(1600)
    expect((await t.api('GET', '/v1/schedules/every')).body.recent_ticks.length).toBe(before)
    // The list shows it too; the audit names who disabled it.
    const list = (await t.api('GET', '/v1/schedules')).body.items
    expect(list.find((x: { name: string }) => x.name === 'every')).toMatchObject({ enabled: false })
    const audit = (await t.api('GET', '/v1/audit?action=schedule.disable')).body.items
    expect(audit[0]).toMatchObject({ action: 'schedule.disable', target: 'every' })

    // A manual run works while disabled: as the schedule, on its thread.
    const trig = await t.api('POST', '/v1/schedules/every/trigger')
    expect(trig.status).toBe(201)
    expect(trig.body).toMatchObject({
      agent: 'flex',
      thread_id: 'schedule:every',
      input: { mode: 'echo', text: 'tick' },
    })
    expect((await t.api('GET', `/v1/runs/${trig.body.id}/wait?timeout=10`)).body.status).toBe('succeeded')
    expect((await t.api('POST', '/v1/schedules/nope/trigger')).status).toBe(404)
    expect((await t.api('PATCH', '/v1/schedules/every', { enabled: 'yes' })).status).toBe(400)
    expect((await t.api('DELETE', '/v1/schedules/every')).status).toBe(204)
    expect((await t.api('GET', '/v1/schedules/every')).status).toBe(404)
  }, 20_000)

  it('overlap skip: ticks while the previous run is active are skipped, never run side by side', async () => {
    await t.apply(
      schedule(
        'slow',
        '{ cron: "* * * * * *", agent: flex, input: { mode: steps, steps: 1, sleepMs: 2200 } }',
      ),
    )
    await sleep(4300)
    await t.api('PATCH', '/v1/schedules/slow', { enabled: false })
    const ticks = (await t.api('GET', '/v1/schedules/slow')).body.recent_ticks as {
      status: string
      run_id: string | null
      reason?: string
    }[]
    const started = ticks.filter((k) => k.status === 'started')
    const skipped = ticks.filter((k) => k.status === 'skipped')
    expect(started.length).toBeGreaterThanOrEqual(1)
    expect(skipped.length).toBeGreaterThanOrEqual(2)
    expect(skipped[0]!.reason).toMatch(/previous run is still active/)
    expect(skipped.every((k) => k.run_id === null)).toBe(true)
    expect(ticks.length).toBe(started.length + skipped.length)
  }, 20_000)

  it('a tick whose run cannot start is recorded as failed with the reason', async () => {
    await t.apply(schedule('bad-input', '{ cron: "* * * * * *", agent: flex, input: { mode: nonsense } }'))
    const failed = await eventually(async () => {
      const ticks = (await t.api('GET', '/v1/schedules/bad-input')).body.recent_ticks as {
        status: string
        reason?: string
      }[]
      return ticks.find((k) => k.status === 'failed')
    }, 5000)
    expect(failed!.reason).toMatch(/invalid_params: input does not match agent flex's schema/)
    await t.api('DELETE', '/v1/schedules/bad-input')
  })
})

/** The scheduler alone on a SQLite store, with a run service that only records what it is asked. */
describe('scheduler: missed ticks after downtime, stale claims', () => {
  let store: Store
  let scheduler: Scheduler | undefined
  const created: { ctx: string; thread?: string; input: unknown }[] = []
  const fakeRuns = (s: Store) =>
    ({
      create: async (ctx, req) => {
        const { run } = await s.runs.create(ctx, {
          id: randomUUID(),
          agent: req.agent,
          input: req.input,
          ...(req.threadId ? { threadId: req.threadId } : {}),
          multitaskStrategy: req.multitaskStrategy ?? 'enqueue',
          caller: { principal: ctx.principal, roles: [...ctx.roles], scopes: [] },
        })
        created.push({
          ctx: `${ctx.principal.kind}:${ctx.principal.id}`,
          thread: req.threadId,
          input: req.input,
        })
        return run
      },
    }) as Pick<RunService, 'create'> as RunService
  const audit = { action: async () => {} } as unknown as AuditWriter

  async function setup(spec: Record<string, unknown>) {
    created.length = 0
    store = openSqliteStore({ path: ':memory:' })
    await store.tenants.ensure(systemContext(), 'acme')
    const admin = createContext({ tenant: 'acme', principal: { kind: 'service', id: 'k' }, roles: ['admin'] })
    await store.resources.apply(admin, [
      {
        kind: 'Schedule',
        tenant: 'acme',
        name: 'job',
        spec: {
          cron: '* * * * * *',
          timezone: 'UTC',
          agent: 'flex',
          input: { n: 1 },
          enabled: true,
          overlap: 'enqueue',
          missed: 'skip',
          ...spec,
        },
      },
    ])
    return admin
  }
  const start = async () => {
    scheduler = new Scheduler({
      store,
      runs: fakeRuns(store),
      audit,
      logger: createLogger('silent'),
      owner: 'me',
      graceMs: 1500,
      refreshMs: 60_000,
    })
    scheduler.load(await store.resources.list(systemContext(), undefined, { allTenants: true }))
    scheduler.start()
  }
  afterEach(async () => {
    await scheduler?.close()
    scheduler = undefined
    await store.close()
  })

  const lastSecond = () => Math.floor(Date.now() / 1000) * 1000

  for (const policy of ['skip', 'run_once'] as const) {
    it(`missed: ${policy} after a minute of downtime`, async () => {
      const admin = await setup({ missed: policy })
      const down = lastSecond() - 60_000
      const k = { tenant: 'acme', schedule: 'job', tickAt: new Date(down).toISOString() }
      await store.schedules.claimTick(k, 'old', down)
      await store.schedules.finishTick('old', k, { status: 'started', runId: 'r-old' })
      const startedAt = Date.now()
      await start()
      await sleep(1800)
      await scheduler!.close()
      const ticks = await store.schedules.listTicks(admin, 'job', 500)
      const missed = ticks.filter((x) => Date.parse(x.tickAt) < startedAt - 1500 && x.tickAt !== k.tickAt)
      if (policy === 'skip') expect(missed).toEqual([])
      else {
        // One run for all the missed ticks, keyed by the latest of them.
        expect(missed).toHaveLength(1)
        expect(missed[0]).toMatchObject({ status: 'started', owner: 'me' })
        expect(Date.parse(missed[0]!.tickAt)).toBeGreaterThan(down + 50_000)
      }
      // Ticking goes on normally after the restart.
      expect(ticks.filter((x) => Date.parse(x.tickAt) >= startedAt).length).toBeGreaterThanOrEqual(1)
      expect(created.every((c) => c.ctx === 'system:schedule:job' && c.thread === 'schedule:job')).toBe(true)
      expect(created).toHaveLength(ticks.filter((x) => x.status === 'started').length - 1)
    })
  }

  it('a tick left claimed by a stopped process is taken over: its run is found, or started', async () => {
    const admin = await setup({ enabled: false })
    const sctx = scheduleContext('acme', 'job')
    const t1 = new Date(lastSecond() - 120_000).toISOString()
    const t2 = new Date(lastSecond() - 60_000).toISOString()
    // t1: the dead claimer had already started the run; t2: it stopped before.
    await store.schedules.claimTick(
      { tenant: 'acme', schedule: 'job', tickAt: t1 },
      'dead',
      Date.now() - 100_000,
    )
    await store.schedules.claimTick(
      { tenant: 'acme', schedule: 'job', tickAt: t2 },
      'dead',
      Date.now() - 50_000,
    )
    await store.runs.createThread(sctx, { id: 'schedule:job' })
    const { run: orphan } = await store.runs.create(sctx, {
      id: 'orphan',
      agent: 'flex',
      input: {},
      threadId: 'schedule:job',
      multitaskStrategy: 'enqueue',
      caller: { principal: sctx.principal, roles: ['member'], scopes: [] },
    })
    // Enable it (a new generation) so that recovery may start runs.
    await store.resources.apply(admin, [
      {
        kind: 'Schedule',
        tenant: 'acme',
        name: 'job',
        spec: {
          cron: '0 0 1 1 *',
          timezone: 'UTC',
          agent: 'flex',
          input: { n: 1 },
          enabled: true,
          overlap: 'enqueue',
          missed: 'skip',
        },
      },
    ])
    await start()
    await scheduler!.refresh()
    await scheduler!.close()
    const ticks = await store.schedules.listTicks(admin, 'job')
    const byAt = Object.fromEntries(ticks.map((x) => [x.tickAt, x]))
    // Exactly one of the two takes the orphan run (the older tick's claim is older); the other starts one.
    const runIds = [byAt[t1]!.runId, byAt[t2]!.runId]
    expect(byAt[t1]).toMatchObject({ status: 'started', owner: 'me' })
    expect(byAt[t2]).toMatchObject({ status: 'started', owner: 'me' })
    expect(runIds).toContain(orphan.id)
    expect(new Set(runIds).size).toBe(2)
    expect(created).toHaveLength(1)
  })
})
