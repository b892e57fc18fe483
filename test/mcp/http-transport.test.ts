import { createServer, type Server, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../src/log.js'
import { HttpTransport } from '../../src/upstream/http.js'
import { Cancellation } from '../../src/upstream/cancel.js'
import { UpstreamRpcError, UpstreamUnavailableError } from '../../src/upstream/rpc.js'

/** undici's own clock for its request timers; `tick` moves it on (undici exports it for tests). */
const undiciTimers = createRequire(import.meta.url)('undici/lib/util/timers.js') as {
  tick(ms: number): void
}

/** An upstream that misbehaves on purpose, to check the client's limits. */
describe('HttpTransport against a hostile upstream', () => {
  let server: Server
  let url: URL
  /** Requests the server holds without answering, ended when the test ends. */
  const held = new Set<ServerResponse>()
  /** The id of the last POSTed request, answered on the resumed GET stream. */
  let polledId: unknown
  const seen: { method: string; lastEventId: string | undefined }[] = []
  /** Notification streams the server holds open (GET with the `listen-session` session). */
  const listens: ServerResponse[] = []
  /** Called when a `slow` call reaches the server. */
  let slowArrived: (() => void) | undefined
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req
        .on('data', (d) => (body += d))
        .on('end', () => {
          seen.push({ method: req.method!, lastEventId: req.headers['last-event-id'] as string | undefined })
          if (req.method === 'GET' && req.headers['mcp-session-id'] === 'listen-session') {
            // The standalone notification stream of a 2025 session: open, and quiet until told.
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write(': open\n\n')
            listens.push(res)
            held.add(res)
            res.on('close', () => held.delete(res))
            return
          }
          if (req.method === 'GET') {
            if (req.headers['last-event-id'] !== 'e1' || polledId === 'refuse') {
              res.writeHead(405).end()
              return
            }
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.end(
              `id: e2\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: polledId, result: { content: [{ type: 'text', text: 'resumed' }] } })}\n\n`,
            )
            return
          }
          const { id, params } = JSON.parse(body)
          if (params?.name === 'silent') {
            held.add(res)
            res.on('close', () => held.delete(res))
          } else if (params?.name === 'streamed') {
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write(
              `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'working' } })}\n\n`,
            )
            setTimeout(
              () =>
                res.end(
                  `data: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'streamed' }] } })}\n\n`,
                ),
              20,
            )
          } else if (params?.name === 'stalled-stream') {
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write(': keep-alive\n\n')
            held.add(res)
            res.on('close', () => held.delete(res))
          } else if (params?.name === 'polled' || params?.name === 'polled-refused') {
            // SSE polling (2025-11-25): prime the stream with an event id, then close it unanswered.
            polledId = params.name === 'polled' ? id : 'refuse'
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.end('id: e1\nretry: 10\ndata: \n\n')
          } else if (params?.name === 'slow' || params?.name === 'slow-stream') {
            // Answers late (as a long tool does): as JSON, or as SSE with a pause inside the body.
            slowArrived?.()
            const answer = JSON.stringify({
              jsonrpc: '2.0',
              id,
              result: { content: [{ type: 'text', text: 'late' }] },
            })
            if (params.name === 'slow') {
              setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(answer), 300)
            } else {
              res.writeHead(200, { 'content-type': 'text/event-stream' })
              res.write(': working\n\n')
              setTimeout(() => res.end(`data: ${answer}\n\n`), 300)
            }
          } else if (params?.name === 'huge') {
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end(
              JSON.stringify({
                jsonrpc: '2.0',
                id,
                result: { content: [{ type: 'text', text: 'x'.repeat(4096) }] },
              }),
            )
          } else if (params?.name === 'endless-event') {
            res.writeHead(200, { 'content-type': 'text/event-stream' })
            res.write('data: ' + 'y'.repeat(4096))
            setTimeout(() => res.end(), 50)
          } else if (params?.name === 'garbage') {
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end('<html>not json</html>')
          } else {
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end(
              JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ok' }] } }),
            )
          }
        })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`)
  })
  afterAll(() => {
    for (const res of held) res.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })

  const transport = (era: '2025-11-25' | '2026-07-28' = '2026-07-28') =>
    new HttpTransport({
      url,
      era,
      headers: {},
      logger: createLogger('silent'),
      envelope: {},
      maxResponseBytes: 1024,
    })

  it('refuses a JSON answer over the limit, and an SSE event that never ends', async () => {
    const t = transport()
    await expect(t.request('tools/call', { name: 'huge' }, { timeoutMs: 5000 })).rejects.toThrow(
      UpstreamUnavailableError,
    )
    await expect(t.request('tools/call', { name: 'endless-event' }, { timeoutMs: 5000 })).rejects.toThrow(
      /over 1024 bytes/,
    )
    await expect(t.request('tools/call', { name: 'fine' }, { timeoutMs: 5000 })).resolves.toMatchObject({
      content: [{ text: 'ok' }],
    })
    await t.close()
  })

  it('reports an answer that is not JSON-RPC as an upstream error, with the HTTP status', async () => {
    const t = transport()
    await expect(t.request('tools/call', { name: 'garbage' }, { timeoutMs: 5000 })).rejects.toThrow(
      /HTTP 200/,
    )
    await t.close()
  })

  it('gives up on a silent upstream after the call timeout and keeps its other calls working', async () => {
    const t = transport()
    const started = Date.now()
    const err = await t.request('tools/call', { name: 'silent' }, { timeoutMs: 150 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UpstreamRpcError)
    expect(err).toMatchObject({ code: -32001, message: 'upstream did not answer within 150 ms' })
    expect(Date.now() - started).toBeLessThan(2000)
    // The abandoned exchange was torn down: the server saw its connection close.
    await expect.poll(() => held.size).toBe(0)
    await expect(t.request('tools/call', { name: 'fine' }, { timeoutMs: 5000 })).resolves.toMatchObject({
      content: [{ text: 'ok' }],
    })
    await t.close()
  })

  it("lets a call run as long as its own timeout allows, past undici's 300 s defaults", async () => {
    // The call's deadline is the transport's timer (connector timeout_ms, up to an hour); undici's
    // headers and body timeouts (300 s unless told otherwise) must not cut such a call short.
    const t = transport()
    for (const name of ['slow', 'slow-stream']) {
      const arrived = new Promise<void>((r) => (slowArrived = r))
      const p = t.request('tools/call', { name }, { timeoutMs: 3_600_000 })
      await arrived
      await new Promise((r) => setTimeout(r, 100)) // the SSE answer's first bytes are in
      // Twenty minutes on undici's clock (a timer joins undici's list on the first tick).
      undiciTimers.tick(0)
      undiciTimers.tick(20 * 60_000)
      await expect(p).resolves.toMatchObject({ content: [{ text: 'late' }] })
    }
    slowArrived = undefined
    await t.close()
  })

  it("keeps a quiet notification stream open past undici's 300 s body timeout", async () => {
    const t = transport('2025-11-25')
    t.sessionId = 'listen-session'
    const notes: string[] = []
    t.onNotification = (method) => notes.push(method)
    t.openListenStream()
    await vi.waitFor(() => expect(listens).toHaveLength(1))
    await new Promise((r) => setTimeout(r, 50)) // the stream's first bytes are in
    undiciTimers.tick(0)
    undiciTimers.tick(20 * 60_000)
    await new Promise((r) => setTimeout(r, 50))
    listens[0]!.write(
      `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\n`,
    )
    await vi.waitFor(() => expect(notes).toEqual(['notifications/tools/list_changed']))
    // Still the first stream: it was not cut and opened again.
    expect(listens).toHaveLength(1)
    expect(listens[0]!.destroyed).toBe(false)
    t.sessionId = undefined // no DELETE of a session the server never made
    await t.close()
  })

  it('cancels a call in flight, in an answer stream, and one cancelled before it was sent', async () => {
    const t = transport()
    const inFlight = new Cancellation()
    const p = t.request('tools/call', { name: 'silent' }, { timeoutMs: 5000, signal: inFlight })
    await expect.poll(() => held.size).toBe(1)
    inFlight.abort('user pressed stop')
    await expect(p).rejects.toMatchObject({ code: -32800, message: 'request cancelled' })
    await expect.poll(() => held.size).toBe(0)

    const inStream = new Cancellation()
    const q = t.request('tools/call', { name: 'stalled-stream' }, { timeoutMs: 5000, signal: inStream })
    await expect.poll(() => held.size).toBe(1)
    inStream.abort()
    await expect(q).rejects.toMatchObject({ code: -32800 })
    await expect.poll(() => held.size).toBe(0)

    const before = new Cancellation()
    before.abort()
    const sent = seen.length
    await expect(
      t.request('tools/call', { name: 'fine' }, { timeoutMs: 5000, signal: before }),
    ).rejects.toMatchObject({ code: -32800 })
    expect(seen.length).toBe(sent)
    await t.close()
  })

  it('relays the notifications of an SSE answer before its result', async () => {
    const t = transport()
    const notes: unknown[] = []
    const result = await t.request(
      'tools/call',
      { name: 'streamed' },
      { timeoutMs: 5000, hooks: { onNotification: (method, params) => notes.push({ method, params }) } },
    )
    expect(result).toMatchObject({ content: [{ text: 'streamed' }] })
    expect(notes).toEqual([{ method: 'notifications/message', params: { level: 'info', data: 'working' } }])
    await t.close()
  })

  it('resumes an SSE answer the 2025 server closed early (GET with Last-Event-ID), and says so when refused', async () => {
    const t = transport('2025-11-25')
    seen.length = 0
    await expect(t.request('tools/call', { name: 'polled' }, { timeoutMs: 5000 })).resolves.toMatchObject({
      content: [{ text: 'resumed' }],
    })
    expect(seen).toEqual([
      { method: 'POST', lastEventId: undefined },
      { method: 'GET', lastEventId: 'e1' },
    ])
    await expect(t.request('tools/call', { name: 'polled-refused' }, { timeoutMs: 5000 })).rejects.toThrow(
      'upstream refused to resume the response stream (HTTP 405)',
    )
    // A 2026 server has no resumption: a stream closed before the answer is an error at once.
    const modern = transport()
    await expect(modern.request('tools/call', { name: 'polled' }, { timeoutMs: 5000 })).rejects.toThrow(
      'upstream closed the response stream before answering',
    )
    await Promise.all([t.close(), modern.close()])
  })

  it('reports an upstream it cannot reach as unavailable', async () => {
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as { port: number }).port
    await new Promise<void>((r) => closed.close(() => r()))
    const t = new HttpTransport({
      url: new URL(`http://127.0.0.1:${port}/mcp`),
      era: '2026-07-28',
      headers: {},
      logger: createLogger('silent'),
      envelope: {},
    })
    const err = await t.request('tools/call', { name: 'fine' }, { timeoutMs: 5000 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UpstreamUnavailableError)
    expect((err as Error).message).toMatch(/^cannot reach upstream: .*ECONNREFUSED/)
    await t.close()
  })
})
