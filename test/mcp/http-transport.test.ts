import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { HttpTransport } from '../../src/upstream/http.js'
import { UpstreamUnavailableError } from '../../src/upstream/rpc.js'

/** An upstream that misbehaves on purpose, to check the client's limits. */
describe('HttpTransport against a hostile upstream', () => {
  let server: Server
  let url: URL
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req
        .on('data', (d) => (body += d))
        .on('end', () => {
          const { id, params } = JSON.parse(body)
          if (params?.name === 'huge') {
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
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const transport = () =>
    new HttpTransport({
      url,
      era: '2026-07-28',
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
})
