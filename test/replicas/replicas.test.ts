import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { randomBytes } from 'node:crypto'
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
// Replicas share the database and the master key (each seals what the others unseal: session ids).
const MASTER_KEY = randomBytes(32).toString('base64')
const env = () => ({ GATEHOUSE_DATABASE_URL: pgsql.url(), GATEHOUSE_MASTER_KEY: MASTER_KEY })

beforeAll(async () => {
  if (!pgsql.ready()) return // every test fails with the start-up error instead
  upstream = await startUpstream({ era: '2025', name: 'up' })
  const manifests = join(dir, 'manifests.yaml')
  writeFileSync(manifests, agentManifests() + '---\n' + httpConnector('up', upstream.url))
  const config = join(dir, 'config.yaml')
  writeFileSync(config, 'runLeaseMs: 30000\nrunPollMs: 2000\n')
  a = await spawnGateway(['--manifests', manifests, '--config', config], env())
  b = await spawnGateway(['--manifests', manifests, '--config', config], env())
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
      const restarted = await spawnGateway(args, env())
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

  describe('MCP 2025-11-25 sessions: any replica serves any request of a session', () => {
    const init = (name = 't', capabilities: Record<string, unknown> = {}) =>
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name, version: '1' } },
      })
    const call = (id: number, name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
      JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
      })
    async function open(url: string, key = ADMIN_KEY): Promise<string> {
      const res = await fetch(`${url}/mcp`, { method: 'POST', headers: mcpHeaders({}, key), body: init() })
      expect(res.status).toBe(200)
      await res.text()
      const sid = res.headers.get('mcp-session-id')!
      const ok = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: mcpHeaders({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }, key),
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      })
      expect(ok.status).toBe(202)
      return sid
    }
    const sessionHeaders = (sid: string, extra: Record<string, string> = {}, key = ADMIN_KEY) =>
      mcpHeaders({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...extra }, key)
    const post = (url: string, sid: string, body: string, key = ADMIN_KEY) =>
      fetch(`${url}/mcp`, { method: 'POST', headers: sessionHeaders(sid, {}, key), body })

    it('a real SDK client alternating replicas on every request: initialize, lists, calls, an elicitation answered on the other replica', async () => {
      // Every HTTP request of this client goes to the other replica than the one before.
      let n = 0
      const seen: string[] = []
      const alternate = (input: string | URL | Request, initReq?: RequestInit) => {
        const u = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
        const target = new URL(n++ % 2 ? b.url : a.url)
        u.host = target.host
        const body =
          typeof initReq?.body === 'string' ? (JSON.parse(initReq.body) as Record<string, unknown>) : {}
        seen.push(
          `${target.port} ${initReq?.method ?? 'GET'} ${String(body.method ?? ('result' in body ? 'answer' : ''))} ${String(body.id ?? '')}`,
        )
        return fetch(u, initReq)
      }
      const client = new Client(
        { name: 'alternating', version: '1' },
        { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: 'legacy' } },
      )
      const asked: string[] = []
      client.setRequestHandler('elicitation/create', async (req) => {
        asked.push(String(req.params.message))
        return { action: 'accept', content: { answer: 'ada' } }
      })
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), {
          fetch: alternate,
          requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
        }),
      )
      try {
        for (let i = 0; i < 3; i++) {
          const tools = await client.listTools()
          expect(tools.tools.map((t) => t.name)).toContain('up__echo')
          const r = await client.callTool({ name: 'up__echo', arguments: { text: `hop ${i}` } })
          expect(JSON.stringify(r.content)).toContain(`hop ${i}`)
        }
        // The upstream asks during the call: the question comes on the call's stream from one
        // replica, the client posts its answer to whichever replica is next.
        for (const q of ['name?', 'again?']) {
          const r = await client.callTool({ name: 'up__ask_related', arguments: { question: q } })
          expect(JSON.stringify(r.content)).toContain('accept:ada')
        }
        expect(asked).toEqual(['name?', 'again?'])
        const progress: number[] = []
        const r = await client.callTool(
          { name: 'up__progress', arguments: { steps: 3 } },
          { onprogress: (p) => progress.push(p.progress) },
        )
        expect(JSON.stringify(r.content)).toContain('done 3')
        expect(progress).toEqual([1, 2, 3])
        // Both replicas served requests of this one session, and each answer to an elicitation
        // went to the other replica than the call that asked it.
        expect(new Set(seen.map((s) => s.split(' ')[0])).size).toBe(2)
        const answers = seen.flatMap((line, i) => (line.includes(' answer ') ? [i] : []))
        expect(answers).toHaveLength(2)
        for (const i of answers) {
          const asking = seen.slice(0, i).findLast((l) => l.includes(' tools/call '))!
          expect(asking.split(' ')[0]).not.toBe(seen[i]!.split(' ')[0])
        }
      } finally {
        await client.close()
      }
    }, 60_000)

    it('an SSE stream cut on one replica resumes with Last-Event-ID on the other, live until the answer', async () => {
      const sid = await open(a.url)
      // A call that takes a while, on A; the client reads the priming event and drops the connection.
      const ac = new AbortController()
      const res = await fetch(`${a.url}/mcp`, {
        method: 'POST',
        headers: sessionHeaders(sid),
        body: call(7, 'up__slow', { ms: 1200 }, { progressToken: 'p7' }),
        signal: ac.signal,
      })
      expect(res.headers.get('content-type')).toContain('text/event-stream')
      const reader = res.body!.getReader()
      let text = ''
      while (!/id: (\S+)/.test(text)) text += new TextDecoder().decode((await reader.read()).value)
      const primingId = /id: (\S+)/.exec(text)![1]!
      ac.abort()
      const t0 = Date.now()
      // B never saw this request: it replays what A stored and follows A's writes live.
      const rest = await readSse(`${b.url}/mcp`, { ...sessionHeaders(sid), 'last-event-id': primingId })
      const answer = rest.find((e) => (e.data as { id?: unknown })?.id === 7)
      expect(answer?.data).toMatchObject({ result: { content: [{ type: 'text', text: 'slept 1200' }] } })
      // The stream ended right after the answer, well before any poll-only fallback would add up.
      expect(rest.at(-1)).toBe(answer)
      expect(Date.now() - t0).toBeLessThan(3000)
      // Resuming again from the same id, on A this time, replays the same events (no loss, no reorder).
      const again = await readSse(`${a.url}/mcp`, { ...sessionHeaders(sid), 'last-event-id': primingId })
      expect(again.map((e) => e.id)).toEqual(rest.map((e) => e.id))
      // Another session's client cannot resume it.
      const other = await open(b.url)
      const foreign = await fetch(`${b.url}/mcp`, {
        headers: { ...sessionHeaders(other), 'last-event-id': primingId },
      })
      expect(foreign.status).toBe(400)
      await foreign.text()
    }, 30_000)

    it('notifications/cancelled sent to the other replica cancels the call where it runs (fast path and SDK path)', async () => {
      const sid = await open(a.url)
      // Fast path (no progress token) and SDK path (progress token): both run on A, cancelled via B.
      for (const [i, meta] of [
        [11, undefined],
        [12, { progressToken: 'p12' }],
      ] as const) {
        // The SDK path sends nothing after a cancellation and keeps its stream open: read it for a
        // while longer than the upstream's 2 s; an uncancelled call would have answered by then.
        const ac = new AbortController()
        const stopReading = setTimeout(() => ac.abort(), 3500)
        const running = fetch(`${a.url}/mcp`, {
          method: 'POST',
          headers: sessionHeaders(sid),
          body: call(i, 'up__slow', { ms: meta ? 2000 : 20_000 }, meta),
          signal: ac.signal,
        }).then(async (r) => {
          let text = ''
          try {
            for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>)
              text += Buffer.from(chunk).toString()
          } catch {
            // stopped reading
          }
          clearTimeout(stopReading)
          return text
        })
        await sleep(300)
        const t0 = Date.now()
        const cancel = await post(
          b.url,
          sid,
          JSON.stringify({
            jsonrpc: '2.0',
            method: 'notifications/cancelled',
            params: { requestId: i, reason: 'stop' },
          }),
        )
        expect(cancel.status).toBe(202)
        const text = await running
        // Never the upstream's answer; the fast path answers the cancellation at once.
        expect(Date.now() - t0).toBeLessThan(4000)
        expect(text).not.toContain('slept')
        if (!meta) expect(JSON.parse(text)).toMatchObject({ id: i, error: { code: -32800 } })
      }
    }, 30_000)

    it('the standalone GET stream works on any replica', async () => {
      const sid = await open(a.url)
      for (const url of [b.url, a.url]) {
        const ac = new AbortController()
        const res = await fetch(`${url}/mcp`, { headers: sessionHeaders(sid), signal: ac.signal })
        expect(res.status).toBe(200)
        expect(res.headers.get('content-type')).toContain('text/event-stream')
        expect(res.headers.get('mcp-session-id')).toBe(sid)
        ac.abort()
      }
    }, 30_000)

    it('DELETE on one replica ends the session on every replica; a stolen or tampered id is 404 everywhere', async () => {
      const sid = await open(a.url)
      // Both replicas hold a live copy of the session.
      for (const url of [a.url, b.url]) {
        const r = await post(url, sid, call(1, 'up__echo', { text: 'x' }))
        expect(r.status).toBe(200)
        expect(await r.text()).toContain('"x"')
      }
      // Another principal of the same tenant holding the id gets 404, as if it did not exist.
      const made = await api(a.url, 'POST', '/v1/admin/keys', { role: 'member', name: 'mallory' })
      expect(made.status).toBe(201)
      for (const url of [a.url, b.url]) {
        const stolen = await post(url, sid, call(2, 'up__echo', { text: 'x' }), made.body.key)
        expect(stolen.status).toBe(404)
        await stolen.text()
      }
      // A tampered id (one character of the sealed part changed) is unknown.
      const i = sid.length - 10
      const tampered = sid.slice(0, i) + (sid[i] === 'A' ? 'B' : 'A') + sid.slice(i + 1)
      for (const url of [a.url, b.url]) {
        const r = await post(url, tampered, call(3, 'up__echo', { text: 'x' }))
        expect(r.status).toBe(404)
        await r.text()
      }

      const del = await fetch(`${b.url}/mcp`, { method: 'DELETE', headers: sessionHeaders(sid) })
      expect(del.status).toBe(200)
      // A heard of it by notification: it answers 404 at once (its cached check is not waited out).
      const t0 = Date.now()
      let status = 0
      while (Date.now() - t0 < 1000) {
        const r = await post(a.url, sid, call(4, 'up__echo', { text: 'x' }))
        await r.text()
        status = r.status
        if (status === 404) break
        await sleep(20)
      }
      expect(status).toBe(404)
      expect(Date.now() - t0).toBeLessThan(1000)
      for (const url of [a.url, b.url]) {
        expect((await post(url, sid, call(5, 'up__echo', { text: 'x' }))).status).toBe(404)
        const get = await fetch(`${url}/mcp`, { headers: sessionHeaders(sid) })
        expect(get.status).toBe(404)
        await get.text()
        const again = await fetch(`${url}/mcp`, { method: 'DELETE', headers: sessionHeaders(sid) })
        expect(again.status).toBe(404)
      }
      // In the store: the row is gone and so are its events.
      const rows = await sql<{ n: string }>('SELECT count(*) AS n FROM mcp_sessions')
      expect(Number(rows[0]!.n)).toBeGreaterThan(0) // the other tests' sessions
    }, 30_000)
  })
})
