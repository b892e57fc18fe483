import { createServer, request, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { send } from '../../src/mcp/ingress.js'
import { eventually } from '../helpers/gateway.js'

/** An SSE response whose client is gone must stop its source, however early the client left. */
describe('ingress SSE send', () => {
  let server: Server | undefined
  afterEach(async () => {
    await new Promise((r) => server?.close(r))
  })

  /** Serves one endless event stream after `delayMs`; resolves once its source was cancelled. */
  async function serve(delayMs: number): Promise<{ url: string; cancelled: Promise<void> }> {
    let cancelled!: () => void
    const done = new Promise<void>((r) => (cancelled = r))
    server = createServer((_req, res) => {
      const body = new ReadableStream<Uint8Array>({
        pull: async (c) => {
          await new Promise((r) => setTimeout(r, 5))
          c.enqueue(new TextEncoder().encode(': keepalive\n\n'))
        },
        cancel: () => cancelled(),
      })
      setTimeout(
        () => void send(res, new Response(body, { headers: { 'content-type': 'text/event-stream' } })),
        delayMs,
      )
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const { port } = server.address() as { port: number }
    return { url: `http://127.0.0.1:${port}/`, cancelled: done }
  }

  for (const [when, delayMs, leaveAfterMs] of [
    ['before the response is sent', 100, 10],
    ['while it streams', 0, 100],
  ] as const) {
    it(`cancels the stream when the client leaves ${when}`, async () => {
      const { url, cancelled } = await serve(delayMs)
      const req = request(url)
      req.on('error', () => {})
      req.on('response', (res) => res.resume())
      req.end()
      setTimeout(() => req.destroy(), leaveAfterMs)
      let done = false
      void cancelled.then(() => (done = true))
      await eventually(() => done, 3000)
      expect(done).toBe(true)
    })
  }
})
