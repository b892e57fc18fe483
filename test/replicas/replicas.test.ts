import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { ADMIN_KEY, httpConnector, mcpHeaders } from '../helpers/gateway.js'
import { usePostgres } from '../helpers/postgres.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { readSse, type SseEvent } from '../helpers/sse.js'
import { agentManifests } from '../runs/manifests.js'

// Two `gatehouse start` processes (replicas) on one PostgreSQL database. The lease is long
// (heartbeat every 10 s) and polling slow (2 s), so anything faster than that went through
// LISTEN/NOTIFY.
const pgsql = usePostgres()
const dir = mkdtempSync(join(tmpdir(), 'gh-replicas-'))
const auth = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }
let upstream: { url: string; close(): Promise<void> }
let a: GatewayProcess
let b: GatewayProcess

beforeAll(async () => {
  if (!pgsql.ready()) return // every test fails with the start-up error instead
  upstream = await startUpstream({ era: '2025', name: 'up' })
  const manifests = join(dir, 'manifests.yaml')
  writeFileSync(manifests, agentManifests() + '---\n' + httpConnector('up', upstream.url))
  const config = join(dir, 'config.yaml')
  writeFileSync(config, 'runLeaseMs: 30000\nrunPollMs: 2000\n')
  const env = { GATEHOUSE_DATABASE_URL: pgsql.url() }
  a = await spawnGateway(['--manifests', manifests, '--config', config], env)
  b = await spawnGateway(['--manifests', manifests, '--config', config], env)
}, 60_000)

afterAll(async () => {
  await Promise.allSettled([a?.stop('SIGKILL'), b?.stop('SIGKILL')])
  await upstream?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function sql<R>(text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: pgsql.url() })
  await c.connect()
  try {
    return (await c.query(text, params)).rows as R[]
  } finally {
    await c.end()
  }
}

async function api(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(url + path, {
    method,
    headers: auth,
    ...(body ? { body: JSON.stringify(body) } : {}),
  })
  return { status: res.status, body: (await res.json().catch(() => undefined)) as any }
}

/** The replica whose engine holds the run's lease, and the other one. */
async function executor(runId: string): Promise<{ x: GatewayProcess; y: GatewayProcess }> {
  for (let i = 0; i < 200; i++) {
    const [row] = await sql<{ status: string; lease_owner: string | null }>(
      'SELECT status, lease_owner FROM runs WHERE id = $1',
      [runId],
    )
    const pid = Number(row?.lease_owner?.split(':')[1])
    if (row?.status === 'running' && pid) {
      if (pid === a.child.pid) return { x: a, y: b }
      if (pid === b.child.pid) return { x: b, y: a }
      throw new Error(`run ${runId} is held by an unknown owner ${row.lease_owner}`)
    }
    await sleep(25)
  }
  throw new Error(`run ${runId} was never claimed`)
}

describe('replicas on PostgreSQL', () => {
  it('a replica killed mid-run: the other finishes it, completed steps do not run again, and its stream resumes there with no gap or duplicate', async () => {
    const log = join(dir, 'steps.log')
    writeFileSync(log, '')
    const created = await api(a.url, 'POST', '/v1/runs', {
      agent: 'flex',
      input: { mode: 'steps', steps: 6, sleepMs: 150, log },
    })
    expect(created.status).toBe(201)
    const id = created.body.id as string
    const { x, y } = await executor(id)
    try {
      // An SSE client on the executing replica reads the first progress events live...
      const first = await readSse(`${x.url}/v1/runs/${id}/events`, auth, {
        until: (e) => e.event === 'progress' && (e.data as { step: number }).step === 1,
      })
      expect(first.at(-1)?.event).toBe('progress')
      // ...then that replica dies mid-step.
      await sleep(60)
      expect(await x.stop('SIGKILL')).toBeNull()
      const killedAt = Date.now()

      // The client reconnects to the survivor with Last-Event-ID and follows to the end.
      const rest = await readSse(`${y.url}/v1/runs/${id}/events`, {
        ...auth,
        'last-event-id': first.at(-1)!.id!,
      })
      const all: SseEvent[] = [...first, ...rest]
      expect(all.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } })
      expect(all.map((e) => Number(e.id))).toEqual(all.map((_, i) => i + 1))
      expect(all.filter((e) => e.event === 'progress').map((e) => (e.data as { step: number }).step)).toEqual(
        [0, 1, 2, 3, 4, 5],
      )
      // Taken over within seconds: dead owner on this host, seen at the next poll (a replica on another host waits for the lease).
      expect(Date.now() - killedAt).toBeLessThan(8000)

      const [row] = await sql<{
        status: string
        attempts: number
        lease_owner: string | null
        output: string
      }>('SELECT status, attempts, lease_owner, output FROM runs WHERE id = $1', [id])
      expect({ ...row, output: JSON.parse(row!.output) }).toMatchObject({
        status: 'succeeded',
        attempts: 2,
        output: { done: [0, 10, 20, 30, 40, 50] },
      })
      // One line per executed step (run:step:step attempt).
      const lines = readFileSync(log, 'utf8').trim().split('\n')
      const byStep = new Map<number, number[]>()
      for (const l of lines) {
        const [run, step, attempt] = l.split(':')
        expect(run).toBe(id)
        byStep.set(Number(step), [...(byStep.get(Number(step)) ?? []), Number(attempt)])
      }
      expect([...byStep.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5])
      // Completed steps ran once; only the step in flight at the kill ran twice (attempt 1, then 2).
      const twice = [...byStep.entries()].filter(([, at]) => at.length > 1)
      expect(twice.length).toBeLessThanOrEqual(1)
      for (const [, at] of twice) expect(at).toEqual([1, 2])
      expect(byStep.get(0)).toEqual([1])
      expect(byStep.get(1)).toEqual([1])
      expect(byStep.get(5)).toEqual([1])
      // The second attempt ran on the survivor: the killed replica was gone and is restarted only below.
      expect(row!.attempts).toBe(2)
    } finally {
      // Restart the killed replica for the next tests.
      const args = x.child.spawnargs.slice(x.child.spawnargs.indexOf('--manifests'))
      const restarted = await spawnGateway(args, { GATEHOUSE_DATABASE_URL: pgsql.url() })
      if (x === a) a = restarted
      else b = restarted
    }
  }, 60_000)

  it('a cancel requested on one replica stops the run executing on the other at once (not at the next heartbeat)', async () => {
    for (let round = 0; round < 3; round++) {
      const created = await api(a.url, 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'hang' } })
      expect(created.status).toBe(201)
      const id = created.body.id as string
      const { y } = await executor(id)
      const started = Date.now()
      const waiting = api(y.url, 'GET', `/v1/runs/${id}/wait?timeout=10`)
      const cancel = await api(y.url, 'POST', `/v1/runs/${id}/cancel`)
      expect(cancel.status).toBe(202)
      const done = await waiting
      const took = Date.now() - started
      expect(done.body).toMatchObject({ id, status: 'cancelled' })
      // Heartbeats come every 10 s and the waiter polls every 2 s: only notifications are this fast
      // (three rounds: a heartbeat happening to fall in the window every time is ~0.1 % likely).
      expect(took).toBeLessThan(1000)
    }
  }, 30_000)

  it('a run created on one replica is streamed live by the other (events notified across replicas)', async () => {
    const created = await api(b.url, 'POST', '/v1/runs', {
      agent: 'flex',
      input: { mode: 'steps', steps: 4, sleepMs: 100 },
    })
    const id = created.body.id as string
    const { y } = await executor(id)
    const t0 = Date.now()
    const events = await readSse(`${y.url}/v1/runs/${id}/events`, auth)
    expect(events.map((e) => e.event)).toEqual([
      'status',
      'status',
      'progress',
      'progress',
      'progress',
      'progress',
      'end',
    ])
    // Four 100 ms steps: with 2 s polling alone this would take seconds longer.
    expect(Date.now() - t0).toBeLessThan(1500)
  }, 30_000)

  it('MCP 2026-07-28 (stateless): calls alternating between replicas all work, tools and agents', async () => {
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'alternating', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    }
    for (let i = 0; i < 8; i++) {
      const url = i % 2 ? b.url : a.url
      const name = i % 4 === 3 ? 'agents__flex' : 'up__echo'
      const args = name === 'up__echo' ? { text: `call ${i}` } : { mode: 'echo', text: `agent ${i}` }
      const res = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: mcpHeaders({
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': name,
        }),
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: i,
          method: 'tools/call',
          params: { name, arguments: args, _meta: meta },
        }),
      })
      expect(res.status).toBe(200)
      const text = await res.text()
      expect(text).toContain(name === 'up__echo' ? `"call ${i}"` : `agent ${i}`)
      expect(text).not.toContain('"error"')
    }
  }, 30_000)

  it('MCP 2025-11-25: a session lives on the replica that created it; the other answers 404 (clients re-initialize)', async () => {
    const init = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: mcpHeaders(),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      }),
    })
    expect(init.status).toBe(200)
    const sid = init.headers.get('mcp-session-id')!
    await init.text()
    const h = mcpHeaders({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })
    const call = (url: string) =>
      fetch(`${url}/mcp`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'up__echo', arguments: { text: 'x' } },
        }),
      })
    const onA = await call(a.url)
    expect(onA.status).toBe(200)
    expect(await onA.text()).toContain('"x"')
    expect((await call(b.url)).status).toBe(404)
  }, 30_000)
})
