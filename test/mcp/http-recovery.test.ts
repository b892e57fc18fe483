import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { Cancellation } from '../../src/upstream/cancel.js'
import { HttpTransport } from '../../src/upstream/http.js'
import { UpstreamUnavailableError, type JsonObject, type RpcMessage } from '../../src/upstream/rpc.js'

/** What the upstream saw: one row per HTTP request. */
interface Seen {
  http: string
  path: string
  session: string | undefined
  lastEventId: string | undefined
  msg: RpcMessage | undefined
  at: number
}

const event = (msg: object, id?: string) =>
  `${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(msg)}\n\n`
const answer = (id: unknown, text: string) => ({
  jsonrpc: '2.0',
  id,
  result: { content: [{ type: 'text', text }] },
})
const note = (data: string) => ({
  jsonrpc: '2.0',
  method: 'notifications/message',
  params: { level: 'info', data },
})
const changed = (kind: string) => ({ jsonrpc: '2.0', method: `notifications/${kind}/list_changed` })

/**
 * Streamable HTTP upstreams whose streams break, end early, poll, or refuse for a while, to check
 * how the client cancels, resumes, reconnects and closes.
 */
describe('HttpTransport recovery', () => {
  let server: Server
  let base: string
  const seen: Seen[] = []
  /** Responses held open until the client goes away (or the test ends). */
  const held = new Set<ServerResponse>()
  /** The request id of the call each resumable stream belongs to, by event id prefix. */
  const owners = new Map<string, unknown>()
  /** How many times each notification stream was asked for, by session (2025) or path (2026). */
  const opens = new Map<string, number>()

  const hold = (res: ServerResponse) => {
    held.add(res)
    res.on('close', () => held.delete(res))
  }
  const sse = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' })
  const count = (key: string) => {
    const n = (opens.get(key) ?? 0) + 1
    opens.set(key, n)
    return n
  }

  function onCall(req: IncomingMessage, res: ServerResponse, msg: RpcMessage): void {
    const name = msg.params?.name
    if (name === 'hold') return hold(res)
    if (name === 'hold-stream') {
      sse(res).write(': working\n\n')
      return hold(res)
    }
    if (name === 'reset') {
      // One event with an id, half of the next, then the connection breaks (RST, not a clean end).
      owners.set('a', msg.id)
      sse(res).write(event(note('before reset'), 'a1') + '{"half": ')
      setTimeout(() => req.socket.resetAndDestroy(), 20)
      return
    }
    if (name === 'reset-no-id') {
      sse(res).write(event(note('no id')))
      setTimeout(() => req.socket.resetAndDestroy(), 20)
      return
    }
    if (name === 'half') {
      // A clean end in the middle of an event: its data line must not be glued to the replay.
      owners.set('b', msg.id)
      sse(res).end('id: b1\ndata: \n\n' + `data: ${JSON.stringify(note('half'))}\n`)
      return
    }
    if (name === 'poll' || name === 'poll-slow') {
      // SSE polling (2025-11-25): prime with an id and a retry delay, then close unanswered.
      owners.set(name === 'poll' ? 'p' : 's', msg.id)
      sse(res).end(name === 'poll' ? 'id: p0\nretry: 30\ndata: \n\n' : 'id: s0\nretry: 10000\ndata: \n\n')
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(msg.id, 'ok')))
  }

  /** GET: a resumed call stream (by Last-Event-ID) or a 2025 session's notification stream. */
  function onGet(req: IncomingMessage, res: ServerResponse, session: string | undefined): void {
    const last = req.headers['last-event-id'] as string | undefined
    if (session === 'no-get') return void res.writeHead(405).end()
    if (session === 'listen') {
      const n = count(session)
      if (n === 1) return void res.writeHead(503).end('busy')
      if (n === 2) return void res.writeHead(401, { 'www-authenticate': 'Bearer' }).end()
      if (n === 3) return void sse(res).end('retry: 20\n' + event(changed('tools'), 'n1'))
      sse(res).write(event(changed('prompts'), 'n2'))
      return hold(res)
    }
    if (last === 'a1') return void sse(res).end(event(answer(owners.get('a'), 'resumed after reset'), 'a2'))
    if (last === 'b1') return void sse(res).end(event(answer(owners.get('b'), 'resumed after half'), 'b2'))
    const poll = /^p(\d+)$/.exec(last ?? '')
    if (poll) {
      // One event per poll; the answer after 25 polls, more than MAX_RESUMES (20) in all.
      const n = Number(poll[1]) + 1
      const msg = n < 25 ? note(`poll ${n}`) : answer(owners.get('p'), `polled ${n} times`)
      return void sse(res).end(event(msg, `p${n}`))
    }
    res.writeHead(405).end()
  }

  /** POST subscriptions/listen (2026): busy twice, then a stream; `/nolisten` does not support it. */
  function onListen(req: IncomingMessage, res: ServerResponse, msg: RpcMessage): void {
    const path = req.url!
    const n = count(path)
    if (path === '/nolisten') {
      res.writeHead(404, { 'content-type': 'application/json' })
      return void res.end(
        JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'nope' } }),
      )
    }
    if (n === 1) return void res.writeHead(429, { 'retry-after': '0' }).end()
    if (n === 2) {
      res.writeHead(500, { 'content-type': 'application/json' })
      return void res.end(
        JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32603, message: 'oops' } }),
      )
    }
    sse(res).write(event(changed('tools')))
    hold(res)
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req
        .on('data', (d) => (body += d))
        .on('end', () => {
          const msg = body ? (JSON.parse(body) as RpcMessage) : undefined
          const session = req.headers['mcp-session-id'] as string | undefined
          const lastEventId = req.headers['last-event-id'] as string | undefined
          seen.push({ http: req.method!, path: req.url!, session, lastEventId, msg, at: Date.now() })
          if (req.method === 'DELETE') return void res.writeHead(200).end()
          if (req.method === 'GET') return onGet(req, res, session)
          if (!msg || msg.id === undefined) return void res.writeHead(202).end()
          if (msg.method === 'subscriptions/listen') return onListen(req, res, msg)
          onCall(req, res, msg)
        })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  beforeEach(() => {
    seen.length = 0
  })
  afterAll(() => {
    for (const res of held) res.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })

  const transport = (era: '2025-11-25' | '2026-07-28', path = '/mcp', origin = base) =>
    new HttpTransport({
      url: new URL(path, origin),
      era,
      headers: {},
      logger: createLogger('silent'),
      envelope: {},
    })
  /** The `params` of every notification of `method` the upstream received. */
  const notes = (method: string) => seen.filter((s) => s.msg?.method === method).map((s) => s.msg!.params)
  const callId = (name: string) => seen.find((s) => s.msg?.params?.name === name)?.msg?.id

  it('tells a 2025 upstream without a session that a call was cancelled or timed out', async () => {
    const t = transport('2025-11-25')
    const stop = new Cancellation()
    const p = t.request('tools/call', { name: 'hold' }, { timeoutMs: 5000, signal: stop })
    await expect.poll(() => held.size).toBe(1)
    stop.abort('user pressed stop')
    await expect(p).rejects.toMatchObject({ code: -32800 })
    const q = t.request('tools/call', { name: 'hold' }, { timeoutMs: 150 })
    await expect(q).rejects.toMatchObject({ code: -32001 })
    const [first, second] = seen.filter((s) => s.msg?.method === 'tools/call').map((s) => s.msg!.id)
    await expect
      .poll(() => notes('notifications/cancelled'))
      .toEqual([
        { requestId: first, reason: 'user pressed stop' },
        { requestId: second, reason: expect.stringMatching(/timed out after 150 ms/) },
      ])
    await expect.poll(() => held.size).toBe(0)
    await t.close()
  })

  it('cancels quietly when the 2025 upstream is gone', async () => {
    // The call's connection is open, but the upstream takes no new one for the notification.
    const down = createServer(() => {})
    await new Promise<void>((r) => down.listen(0, '127.0.0.1', r))
    const t = transport('2025-11-25', '/mcp', `http://127.0.0.1:${(down.address() as { port: number }).port}`)
    const stop = new Cancellation()
    const p = t.request('tools/call', { name: 'hold' }, { timeoutMs: 5000, signal: stop })
    await sleep(50)
    const closed = new Promise<void>((r) => down.close(() => r()))
    stop.abort('user pressed stop')
    await expect(p).rejects.toMatchObject({ code: -32800 })
    await sleep(50) // the notification's POST failed meanwhile, and did not throw
    await t.close()
    down.closeAllConnections()
    await closed
  })

  it('cancels a 2026 call by closing its request, with no notifications/cancelled', async () => {
    // 2026-07-28 Streamable HTTP: closing the response stream is the cancellation.
    const t = transport('2026-07-28')
    const stop = new Cancellation()
    const p = t.request('tools/call', { name: 'hold-stream' }, { timeoutMs: 5000, signal: stop })
    await expect.poll(() => held.size).toBe(1)
    stop.abort('user pressed stop')
    await expect(p).rejects.toMatchObject({ code: -32800 })
    await expect.poll(() => held.size).toBe(0)
    await expect(t.request('tools/call', { name: 'hold' }, { timeoutMs: 150 })).rejects.toMatchObject({
      code: -32001,
    })
    await expect.poll(() => held.size).toBe(0)
    await sleep(50)
    expect(notes('notifications/cancelled')).toEqual([])
    await t.close()
  })

  it('resumes a 2025 call stream broken by a reset, with a fresh parser', async () => {
    const t = transport('2025-11-25')
    const logs: unknown[] = []
    const hooks = { onNotification: (_m: string, params: JsonObject | undefined) => logs.push(params?.data) }
    await expect(
      t.request('tools/call', { name: 'reset' }, { timeoutMs: 5000, hooks }),
    ).resolves.toMatchObject({
      content: [{ text: 'resumed after reset' }],
    })
    expect(seen.filter((s) => s.http === 'GET').map((s) => s.lastEventId)).toEqual(['a1'])
    expect(logs).toEqual(['before reset'])
    await t.close()
  })

  it('drops the half event of a stream that ended mid-event before resuming', async () => {
    const t = transport('2025-11-25')
    await expect(t.request('tools/call', { name: 'half' }, { timeoutMs: 5000 })).resolves.toMatchObject({
      content: [{ text: 'resumed after half' }],
    })
    await t.close()
  })

  it('reports a broken call stream it cannot resume as the upstream being unavailable', async () => {
    const host = new URL(base).host
    for (const era of ['2025-11-25', '2026-07-28'] as const) {
      const t = transport(era)
      const err = await t.request('tools/call', { name: 'reset-no-id' }, { timeoutMs: 5000 }).catch((e) => e)
      expect(err).toBeInstanceOf(UpstreamUnavailableError)
      expect((err as Error).message).toContain(`upstream ${host}`)
      await t.close()
    }
    expect(seen.filter((s) => s.http === 'GET')).toEqual([])
  })

  it('keeps resuming a polling 2025 server while it delivers events, after its retry delay', async () => {
    const t = transport('2025-11-25')
    await expect(t.request('tools/call', { name: 'poll' }, { timeoutMs: 10_000 })).resolves.toMatchObject({
      content: [{ text: 'polled 25 times' }],
    })
    const gets = seen.filter((s) => s.http === 'GET')
    expect(gets.map((s) => s.lastEventId)).toEqual(Array.from({ length: 25 }, (_, i) => `p${i}`))
    // retry: 30 came on the first stream only; it still spaces every reconnection.
    const gaps = gets.slice(1).map((g, i) => g.at - gets[i]!.at)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(25)
    await t.close()
  })

  it('retries the 2025 GET stream after 503 and 401, resuming it with Last-Event-ID', async () => {
    const t = transport('2025-11-25')
    t.sessionId = 'listen'
    const got: string[] = []
    t.onNotification = (method) => got.push(method)
    t.openListenStream()
    await expect
      .poll(() => got, { timeout: 5000 })
      .toEqual(['notifications/tools/list_changed', 'notifications/prompts/list_changed'])
    const gets = seen.filter((s) => s.http === 'GET')
    expect(gets.map((s) => s.lastEventId)).toEqual([undefined, undefined, undefined, 'n1'])
    expect(gets[3]!.at - gets[2]!.at).toBeGreaterThanOrEqual(15) // retry: 20
    await t.close()
    // 405 is final: no stream, and no second try.
    const refused = transport('2025-11-25')
    refused.sessionId = 'no-get'
    refused.openListenStream()
    await sleep(800)
    expect(seen.filter((s) => s.http === 'GET' && s.session === 'no-get')).toHaveLength(1)
    await refused.close()
  })

  it('retries subscriptions/listen after 429 and 500, and stops where it is not supported', async () => {
    const t = transport('2026-07-28', '/listen')
    const got: string[] = []
    t.onNotification = (method) => got.push(method)
    t.openListenStream({ toolsListChanged: true })
    await expect.poll(() => got, { timeout: 5000 }).toEqual(['notifications/tools/list_changed'])
    expect(opens.get('/listen')).toBe(3)
    await t.close()
    const unsupported = transport('2026-07-28', '/nolisten')
    unsupported.openListenStream({ toolsListChanged: true })
    await sleep(800)
    expect(opens.get('/nolisten')).toBe(1)
    await unsupported.close()
  })

  it('closes at once: calls in flight fail, and a 2025 upstream hears of them before the DELETE', async () => {
    const t = transport('2025-11-25')
    t.sessionId = 'closing'
    const calls = ['hold', 'hold-stream', 'poll-slow'].map((name) =>
      t.request('tools/call', { name }, { timeoutMs: 60_000 }).catch((e: unknown) => e),
    )
    await expect.poll(() => held.size).toBe(2)
    await sleep(50) // poll-slow is waiting out its retry: 10000
    const started = Date.now()
    const outcome = await Promise.race([t.close().then(() => 'closed'), sleep(2000).then(() => 'stuck')])
    expect(outcome).toBe('closed')
    for (const err of await Promise.all(calls)) {
      expect(err).toBeInstanceOf(UpstreamUnavailableError)
      expect((err as Error).message).toBe('connection closed')
    }
    expect(Date.now() - started).toBeLessThan(1000)
    const ids = ['hold', 'hold-stream', 'poll-slow'].map(callId)
    const after = seen.filter((s) => s.msg?.method === 'notifications/cancelled' || s.http === 'DELETE')
    expect(after.map((s) => s.msg?.method ?? s.http)).toEqual([
      'notifications/cancelled',
      'notifications/cancelled',
      'notifications/cancelled',
      'DELETE',
    ])
    expect(after.slice(0, 3).map((s) => s.msg!.params!.requestId)).toEqual(expect.arrayContaining(ids))
    expect(after.every((s) => s.session === 'closing')).toBe(true)
    await expect.poll(() => held.size).toBe(0)

    // 2026: the call's request is closed, nothing else is sent.
    const modern = transport('2026-07-28')
    const call = modern.request('tools/call', { name: 'hold-stream' }, { timeoutMs: 60_000 }).catch((e) => e)
    await expect.poll(() => held.size).toBe(1)
    await modern.close()
    expect(await call).toBeInstanceOf(UpstreamUnavailableError)
    await expect.poll(() => held.size).toBe(0)
    expect(seen.filter((s) => s.msg?.method === 'notifications/cancelled')).toHaveLength(3)
  })
})
