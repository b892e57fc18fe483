import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { hostname } from 'node:os'
import { tmpdir } from 'node:os'
import { createContext } from '../../src/context.js'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { ADMIN_KEY, httpConnector, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { readSse } from '../helpers/sse.js'
import { agentManifests } from './manifests.js'

let t: TestGateway
let upstream: { url: string; close(): Promise<void> }
const tmp = mkdtempSync(join(tmpdir(), 'gh-runs-'))

async function run(body: Record<string, unknown>, key = ADMIN_KEY) {
  const r = await t.api('POST', '/v1/runs', body, key)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body as { id: string; status: string; thread_id: string | null }
}

async function waitRun(id: string, key = ADMIN_KEY) {
  const r = await t.api('GET', `/v1/runs/${id}/wait?timeout=20`, undefined, key)
  expect(r.status).toBe(200)
  return r.body as Record<string, any>
}

beforeAll(async () => {
  upstream = await startUpstream({ era: '2025', name: 'up' })
  t = await startTestGateway({ config: { streamHeartbeatMs: 100 } })
  await t.apply(agentManifests() + '---\n' + httpConnector('up', upstream.url))
})

afterAll(async () => {
  await t?.close()
  await upstream?.close()
  rmSync(tmp, { recursive: true, force: true })
})

describe('runs', () => {
  it('runs an agent to completion and streams its events, ending after the terminal event', async () => {
    const created = await run({ agent: 'flex', input: { mode: 'echo', text: 'hello' } })
    expect(created.status).toBe('queued')
    const events = await readSse(`${t.url}/v1/runs/${created.id}/events`, {
      authorization: `Bearer ${ADMIN_KEY}`,
    })
    expect(events.map((e) => e.event)).toEqual(['status', 'status', 'token', 'end'])
    expect(events.map((e) => Number(e.id))).toEqual([1, 2, 3, 4])
    expect(events[2]!.data).toEqual({ type: 'token', text: 'hello' })
    expect(events[3]!.data).toMatchObject({ status: 'succeeded', output: { text: 'hello' } })
    const got = await t.api('GET', `/v1/runs/${created.id}`)
    expect(got.body).toMatchObject({
      id: created.id,
      status: 'succeeded',
      agent: 'flex',
      output: { text: 'hello' },
    })
    expect(got.body.created_at).toBeTruthy()
  })

  it('replays exactly what followed Last-Event-ID', async () => {
    const { id } = await run({ agent: 'flex', input: { mode: 'steps', steps: 3 } })
    await waitRun(id)
    const all = await readSse(`${t.url}/v1/runs/${id}/events`, { authorization: `Bearer ${ADMIN_KEY}` })
    const from = all[2]!.id!
    const rest = await readSse(`${t.url}/v1/runs/${id}/events`, {
      authorization: `Bearer ${ADMIN_KEY}`,
      'last-event-id': from,
    })
    expect(rest).toEqual(all.slice(3))
    expect(rest.at(-1)!.event).toBe('end')
  })

  it('keeps an idle stream alive with comments and keeps it open across an interrupt', async () => {
    const { id } = await run({ agent: 'flex', input: { mode: 'interrupt' } })
    let comments = 0
    const seen = await readSse(
      `${t.url}/v1/runs/${id}/events`,
      { authorization: `Bearer ${ADMIN_KEY}` },
      {
        onComment: () => {
          comments += 1
          if (comments === 3) void t.api('POST', `/v1/runs/${id}/resume`, { value: 'late' })
        },
      },
    )
    expect(comments).toBeGreaterThanOrEqual(3)
    expect(seen.map((e) => e.event)).toEqual(['status', 'status', 'interrupt', 'status', 'status', 'end'])
    expect(seen.at(-1)!.data).toMatchObject({ status: 'succeeded', output: { answer: 'late' } })
  })

  it('loads a TypeScript agent with a zod input schema and validates input against it', async () => {
    const { id } = await run({ agent: 'typed', input: { a: 2, b: 3 } })
    expect((await waitRun(id)).output).toEqual({ sum: 5 })
    const bad = await t.api('POST', '/v1/runs', { agent: 'typed', input: { a: 'x' } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/input does not match agent typed/)
    const agents = await t.api('GET', '/v1/agents')
    const typed = agents.body.items.find((a: any) => a.name === 'typed')
    expect(typed.description).toBe('Adds two numbers')
    expect(typed.input_schema.properties).toHaveProperty('a')
  })

  it('interrupts durably and resumes with the value', async () => {
    const { id } = await run({ agent: 'flex', input: { mode: 'interrupt', text: 'Deploy?' } })
    const paused = await waitRun(id)
    expect(paused.status).toBe('interrupted')
    expect(paused.interrupt).toEqual({ question: 'Deploy?' })
    const resumed = await t.api('POST', `/v1/runs/${id}/resume`, { value: { ok: true } })
    expect(resumed.status).toBe(202)
    const done = await waitRun(id)
    expect(done).toMatchObject({ status: 'succeeded', output: { before: 'prepared', answer: { ok: true } } })
    const again = await t.api('POST', `/v1/runs/${id}/resume`, { value: 1 })
    expect(again.status).toBe(409)
    expect(again.body.error.message).toMatch(/not interrupted/)
  })

  it('calls a real upstream tool through the pipeline with an idempotency key in _meta', async () => {
    const { id } = await run({ agent: 'flex', input: { mode: 'tool', tool: 'up__whoami' } })
    const done = await waitRun(id)
    expect(done.status).toBe('succeeded')
    const seen = JSON.parse(textOf(done.output))
    expect(seen.meta['io.gatehouse/idempotency-key']).toBe(`${id}:0`)
    expect(seen.meta.traceparent).toMatch(/^00-[0-9a-f]{32}-/)
    let row: unknown
    await expect
      .poll(
        async () =>
          (row = (await t.api('GET', '/v1/audit?action=tool.call')).body.items.find(
            (a: any) => a.requestId === id,
          )),
      )
      .toBeTruthy()
    expect(row).toMatchObject({ principal: 'agent:flex', principalKind: 'agent', target: 'up/whoami' })
  })

  it('fails a run whose tool is unknown, and a run whose agent throws, with clear errors', async () => {
    const a = await run({ agent: 'flex', input: { mode: 'tool', tool: 'up__nope' } })
    expect((await waitRun(a.id)).error).toEqual({ code: 'not_found', message: 'unknown tool up__nope' })
    const b = await run({ agent: 'flex', input: { mode: 'fail', text: 'boom' } })
    expect((await waitRun(b.id)).error).toEqual({ code: 'agent_error', message: 'boom' })
  })

  it('cancels a running run promptly, and refuses to cancel a finished one', async () => {
    const { id } = await run({ agent: 'flex', input: { mode: 'hang' } })
    await expect
      .poll(async () => (await t.api('GET', `/v1/runs/${id}`)).body.status, { timeout: 5000 })
      .toBe('running')
    const c = await t.api('POST', `/v1/runs/${id}/cancel`)
    expect(c.status).toBe(202)
    expect((await waitRun(id)).status).toBe('cancelled')
    expect((await t.api('POST', `/v1/runs/${id}/cancel`)).status).toBe(409)
  })

  it('gives agents long-term memory shared with the /v1/store API', async () => {
    const a = await run({ agent: 'flex', input: { mode: 'memory', text: 'alpha' } })
    expect((await waitRun(a.id)).output).toEqual({ got: { text: 'alpha', n: 1 }, keys: ['alpha'] })
    const b = await run({ agent: 'flex', input: { mode: 'memory', text: 'beta' } })
    expect((await waitRun(b.id)).output.keys).toEqual(['alpha', 'beta'])
    const viaApi = await t.api('GET', '/v1/store/items?namespace=notes&namespace=user&key=beta')
    expect(viaApi.body.value).toEqual({ text: 'beta', n: 1 })
  })

  it('gives clear 4xx errors for bad input', async () => {
    expect((await t.api('POST', '/v1/runs', { agent: 'nope', input: {} })).body.error).toEqual({
      code: 'not_found',
      message: 'unknown agent nope',
    })
    const schema = await t.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'dance' } })
    expect(schema.status).toBe(400)
    expect(schema.body.error.message).toMatch(/\/mode/)
    const extra = await t.api('POST', '/v1/runs', { agent: 'flex', input: {}, colour: 'red' })
    expect(extra.status).toBe(400)
    expect((await t.api('GET', '/v1/runs/00000000-0000-0000-0000-000000000000')).status).toBe(404)
    expect((await t.api('POST', '/v1/runs/nope/resume', { value: 1 })).status).toBe(404)
    const strategy = await t.api('POST', '/v1/runs', {
      agent: 'flex',
      input: { mode: 'echo' },
      multitask_strategy: 'x',
    })
    expect(strategy.status).toBe(400)
    const hook = await t.api('POST', '/v1/runs', {
      agent: 'flex',
      input: { mode: 'echo' },
      webhook: 'http://127.0.0.1:9/hook',
    })
    expect(hook.status).toBe(400)
    expect(hook.body.error.message).toMatch(/GATEHOUSE_ALLOW_PRIVATE_NETWORK/)
    const { id } = await run({ agent: 'flex', input: { mode: 'echo' } })
    const badId = await fetch(`${t.url}/v1/runs/${id}/events`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'last-event-id': 'abc' },
    })
    expect(badId.status).toBe(400)
  })

  it('keeps runs of one tenant invisible to another, and a member sees only their own', async () => {
    await t.api('POST', '/v1/admin/tenants', { name: 'other' })
    const otherKey = (await t.api('POST', '/v1/admin/keys', { tenant: 'other', role: 'admin' })).body.key
    const memberA = (await t.api('POST', '/v1/admin/keys', { role: 'member' })).body.key
    const memberB = (await t.api('POST', '/v1/admin/keys', { role: 'member' })).body.key
    const { id } = await run({ agent: 'flex', input: { mode: 'echo' } }, memberA)
    await waitRun(id, memberA)
    for (const key of [otherKey, memberB]) {
      expect((await t.api('GET', `/v1/runs/${id}`, undefined, key)).status).toBe(404)
      expect((await t.api('POST', `/v1/runs/${id}/cancel`, undefined, key)).status).toBe(404)
      expect((await t.api('GET', `/v1/runs/${id}/events`, undefined, key)).status).toBe(404)
      const list = await t.api('GET', '/v1/runs', undefined, key)
      expect(list.body.items.map((r: any) => r.id)).not.toContain(id)
    }
    // Tenant `other` has no agent flex at all.
    expect(
      (await t.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'echo' } }, otherKey)).status,
    ).toBe(404)
    const admin = await t.api('GET', '/v1/runs?limit=500')
    expect(admin.body.items.map((r: any) => r.id)).toContain(id)
  })
})

describe('threads and multitask strategies', () => {
  const newThread = async () => {
    const r = await t.api('POST', '/v1/threads', {})
    expect(r.status).toBe(201)
    return r.body.thread_id as string
  }

  it('shares state between runs on a thread', async () => {
    const tid = await newThread()
    for (let i = 1; i <= 2; i++) {
      const r = await t.api('POST', `/v1/threads/${tid}/runs`, {
        agent: 'flex',
        input: { mode: 'state', text: `m${i}` },
      })
      expect((await waitRun(r.body.id)).output).toEqual({ count: i })
    }
    const th = await t.api('GET', `/v1/threads/${tid}`)
    expect(th.body).toMatchObject({ thread_id: tid, status: 'idle', values: { count: 2, last: 'm2' } })
    const runs = await t.api('GET', `/v1/threads/${tid}/runs`)
    expect(runs.body.items).toHaveLength(2)
  })

  it('reject: 409 while a run is active', async () => {
    const tid = await newThread()
    const first = await run({ agent: 'flex', thread_id: tid, input: { mode: 'state', sleepMs: 400 } })
    const second = await t.api('POST', '/v1/runs', {
      agent: 'flex',
      thread_id: tid,
      input: { mode: 'state' },
      multitask_strategy: 'reject',
    })
    expect(second.status).toBe(409)
    expect((await waitRun(first.id)).status).toBe('succeeded')
  })

  it('enqueue (default): runs one after another in order', async () => {
    const tid = await newThread()
    const ids = []
    for (let i = 0; i < 3; i++)
      ids.push(
        (await run({ agent: 'flex', thread_id: tid, input: { mode: 'state', sleepMs: 100, text: `q${i}` } }))
          .id,
      )
    const outs = []
    for (const id of ids) outs.push((await waitRun(id)).output.count)
    expect(outs).toEqual([1, 2, 3])
    expect((await t.api('GET', `/v1/threads/${tid}`)).body.values).toEqual({ count: 3, last: 'q2' })
  })

  it('interrupt: cancels the active run and starts the new one', async () => {
    const tid = await newThread()
    const first = await run({ agent: 'flex', thread_id: tid, input: { mode: 'hang' } })
    await expect.poll(async () => (await t.api('GET', `/v1/runs/${first.id}`)).body.status).toBe('running')
    const second = await run({
      agent: 'flex',
      thread_id: tid,
      input: { mode: 'state' },
      multitask_strategy: 'interrupt',
    })
    expect((await waitRun(second.id)).status).toBe('succeeded')
    const f = await t.api('GET', `/v1/runs/${first.id}`)
    expect(f.body.status).toBe('cancelled')
    expect(f.body.error.message).toMatch(/interrupted by run/)
  })

  it('rollback: deletes the active run and restores the state it started from', async () => {
    const tid = await newThread()
    await waitRun((await run({ agent: 'flex', thread_id: tid, input: { mode: 'state', text: 'kept' } })).id)
    const doomed = await run({
      agent: 'flex',
      thread_id: tid,
      input: { mode: 'state', sleepMs: 500, text: 'doomed' },
    })
    await expect.poll(async () => (await t.api('GET', `/v1/runs/${doomed.id}`)).body.status).toBe('running')
    const next = await run({
      agent: 'flex',
      thread_id: tid,
      input: { mode: 'state', text: 'after' },
      multitask_strategy: 'rollback',
    })
    expect((await waitRun(next.id)).output).toEqual({ count: 2 })
    expect((await t.api('GET', `/v1/runs/${doomed.id}`)).status).toBe(404)
    // The doomed run's step finishes in the background but can no longer write.
    await new Promise((r) => setTimeout(r, 700))
    expect((await t.api('GET', `/v1/threads/${tid}`)).body.values).toEqual({ count: 2, last: 'after' })
  })

  it('refuses to delete a busy thread, deletes an idle one with its runs', async () => {
    const tid = await newThread()
    const r1 = await run({ agent: 'flex', thread_id: tid, input: { mode: 'hang' } })
    expect((await t.api('DELETE', `/v1/threads/${tid}`)).status).toBe(409)
    await t.api('POST', `/v1/runs/${r1.id}/cancel`)
    await waitRun(r1.id)
    expect((await t.api('DELETE', `/v1/threads/${tid}`)).status).toBe(204)
    expect((await t.api('GET', `/v1/runs/${r1.id}`)).status).toBe(404)
    expect((await t.api('GET', `/v1/threads/${tid}`)).status).toBe(404)
  })
})

describe('leases', () => {
  it('takes over at once a run held by a dead incarnation with this very pid (a container restarted as PID 1)', async () => {
    const ctx = createContext({
      tenant: 'default',
      principal: { kind: 'service', id: 'bootstrap' },
      roles: ['admin'],
    })
    const runs = t.gw.store.runs
    const id = randomUUID()
    await runs.create(ctx, {
      id,
      agent: 'flex',
      input: { mode: 'echo', text: 'again' },
      multitaskStrategy: 'enqueue',
      caller: { principal: ctx.principal, roles: ['admin'], scopes: [] },
    })
    // Same host, same pid, an owner no live engine here holds; a lease far in the future.
    const claimed = await runs.claim(`${hostname()}:${process.pid}:0ld0wner`, Date.now(), 600_000, 1)
    expect(claimed.map((r) => r.id)).toEqual([id])
    const started = Date.now()
    const done = await waitRun(id)
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2, output: { text: 'again' } })
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe('journal', () => {
  it('a drained gateway hands its run over; completed steps are not executed again', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-drain-'))
    const log = join(tmp, 'drain.log')
    const cfg = { dataDir, drainTimeoutMs: 5000, runLeaseMs: 2000 }
    const a = await startTestGateway({ config: cfg })
    await a.apply(agentManifests())
    const { id } = (
      await a.api('POST', '/v1/runs', {
        agent: 'flex',
        input: { mode: 'steps', steps: 4, sleepMs: 150, log },
      })
    ).body
    await expect
      .poll(() => readFileSync(log, 'utf8').split('\n').filter(Boolean).length, { timeout: 5000 })
      .toBeGreaterThan(0)
    await a.gw.close()
    const b = await startTestGateway({ config: cfg })
    try {
      const done = (await b.api('GET', `/v1/runs/${id}/wait?timeout=20`)).body
      expect(done).toMatchObject({ status: 'succeeded', output: { done: [0, 10, 20, 30] } })
      expect(done.attempts).toBe(2)
      const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean)
      expect(lines.map((l) => l.split(':')[1])).toEqual(['0', '1', '2', '3'])
      // Each progress event exactly once across both executions.
      const events = (
        await readSse(`${b.url}/v1/runs/${id}/events`, { authorization: `Bearer ${ADMIN_KEY}` })
      ).filter((e) => e.event === 'progress')
      expect(events.map((e) => (e.data as { step: number }).step)).toEqual([0, 1, 2, 3])
    } finally {
      await b.close()
    }
  })

  it('a journal that diverges on replay fails the run with a non-determinism error', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-nondet-'))
    const cfg = { dataDir, drainTimeoutMs: 5000 }
    const a = await startTestGateway({ config: cfg })
    await a.apply(agentManifests())
    const { id } = (
      await a.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'random', sleepMs: 400 } })
    ).body
    await expect.poll(async () => (await a.api('GET', `/v1/runs/${id}`)).body.status).toBe('running')
    await new Promise((r) => setTimeout(r, 100))
    await a.gw.close()
    const b = await startTestGateway({ config: cfg })
    try {
      const done = (await b.api('GET', `/v1/runs/${id}/wait?timeout=20`)).body
      expect(done.status).toBe('failed')
      expect(done.error.code).toBe('nondeterminism')
      expect(done.error.message).toMatch(/journal position 0 recorded step "r-/)
    } finally {
      await b.close()
    }
  })
})
