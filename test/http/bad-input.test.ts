import { request as httpRequest, type ClientRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_KEY,
  httpConnector,
  mcpHeaders,
  startTestGateway,
  textOf,
  type TestGateway,
} from '../helpers/gateway.js'
// @ts-expect-error plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
}
const ACCEPT = 'application/json, text/event-stream'

describe('bad input gets the spec error and the gateway keeps serving', () => {
  let gw: TestGateway
  let up: { url: string; close(): Promise<void> }

  const post = (body: string, headers: Record<string, string> = {}, path = '/mcp') =>
    fetch(gw.url + path, {
      method: 'POST',
      headers: mcpHeaders(headers),
      body,
    })

  const openSession = async () => {
    const res = await post(JSON.stringify(INIT))
    expect(res.status).toBe(200)
    await res.text()
    const sid = res.headers.get('mcp-session-id')!
    const ack = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    })
    expect(ack.status).toBe(202)
    return sid
  }

  /** A POST through node:http, for what fetch will not send (a foreign Host, a chunked stream). */
  const rawPost = (headers: Record<string, string>, send: (req: ClientRequest) => void) =>
    new Promise<number>((resolve, reject) => {
      const url = new URL(gw.url)
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: '/mcp',
          method: 'POST',
          headers: mcpHeaders(headers),
        },
        (res) => {
          res.resume()
          resolve(res.statusCode!)
        },
      )
      req.on('error', reject)
      send(req)
    })

  beforeAll(async () => {
    up = await startUpstream({ era: '2025' })
    gw = await startTestGateway({
      config: { maxBodyBytes: 64 * 1024 },
      manifests: httpConnector('up', up.url),
    })
  })
  afterAll(async () => {
    await gw?.close()
    await up?.close()
  })

  it('malformed percent-encoding in the path → 400 before authentication, not a 500', async () => {
    for (const path of ['/mcp/%ZZ', '/v1/runs/%E0%A4']) {
      const res = await fetch(gw.url + path)
      expect(res.status, path).toBe(400)
      expect(((await res.json()) as { error: unknown }).error).toMatchObject({
        code: 'bad_request',
        message: 'malformed percent-encoding in the request path',
      })
    }
  })

  it('malformed JSON → 400 with JSON-RPC parse error -32700', async () => {
    const res = await post('{"jsonrpc": "2.0", "id": 1, "method": ')
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: unknown } }).error.code).toBe(-32700)
  })

  it('a JSON value that is not a JSON-RPC message → 400 -32600', async () => {
    for (const body of ['42', '"x"', 'null']) {
      const res = await post(body)
      expect(res.status).toBe(400)
      expect(((await res.json()) as { error: { code: unknown } }).error.code).toBe(-32600)
    }
  })

  it('wrong Content-Type → 415', async () => {
    const res = await post(JSON.stringify(INIT), { 'content-type': 'text/plain' })
    expect(res.status).toBe(415)
  })

  it('wrong Accept on a 2025 request → 406', async () => {
    const res = await post(JSON.stringify(INIT), { accept: 'text/html' })
    expect(res.status).toBe(406)
  })

  it('a body over the configured limit → 413 before it is parsed', async () => {
    const big = JSON.stringify({ ...INIT, params: { ...INIT.params, pad: 'x'.repeat(70 * 1024) } })
    const res = await post(big)
    expect(res.status).toBe(413)
    expect(((await res.json()) as { error: { code: unknown } }).error.code).toBe('payload_too_large')
  })

  it('a chunked body that grows past the limit → 413', async () => {
    const status = await rawPost({ 'transfer-encoding': 'chunked' }, (req) => {
      for (let i = 0; i < 80; i++) req.write('x'.repeat(1024))
      req.end()
    })
    expect(status).toBe(413)
  })

  it('an unknown session → 404; a terminated session → 404', async () => {
    const ghost = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), {
      'mcp-session-id': 'no-such-session',
      'mcp-protocol-version': '2025-11-25',
    })
    expect(ghost.status).toBe(404)
    const sid = await openSession()
    const list = await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), {
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    })
    expect(list.status).toBe(200)
    expect(await list.text()).toContain('up__echo')
    const del = await fetch(gw.url + '/mcp', {
      method: 'DELETE',
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        'mcp-session-id': sid,
        'mcp-protocol-version': '2025-11-25',
      },
    })
    expect(del.status).toBe(200)
    const after = await post(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }), {
      'mcp-session-id': sid,
      'mcp-protocol-version': '2025-11-25',
    })
    expect(after.status).toBe(404)
  })

  it('a request without a session that is not initialize → 400', async () => {
    const res = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), {
      'mcp-protocol-version': '2025-11-25',
    })
    expect(res.status).toBe(400)
  })

  it('no key, a malformed header, an unknown key → 401 with WWW-Authenticate', async () => {
    for (const authorization of [
      undefined,
      'Basic abc',
      'Bearer',
      'Bearer gk_unknown_key_000000000000',
      `Bearer ${'x'.repeat(10_000)}`,
    ]) {
      const res = await fetch(gw.url + '/mcp', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          ...(authorization ? { authorization } : {}),
        },
        body: JSON.stringify(INIT),
      })
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/)
      expect(((await res.json()) as { error: { code: unknown } }).error.code).toBe('unauthenticated')
    }
  })

  it('a foreign Origin or Host is refused (DNS rebinding)', async () => {
    expect((await post(JSON.stringify(INIT), { origin: 'https://evil.example' })).status).toBe(403)
    expect((await post(JSON.stringify(INIT), { origin: 'null' })).status).toBe(403)
    const url = new URL(gw.url)
    const status = await rawPost({ host: 'evil.example' }, (req) => req.end(JSON.stringify(INIT)))
    expect(status).toBe(403)
    expect((await post(JSON.stringify(INIT), { origin: `http://localhost:${url.port}` })).status).toBe(200)
    // A Host accepted a moment ago lets nothing else through.
    expect(await rawPost({ host: 'evil.example' }, (req) => req.end(JSON.stringify(INIT)))).toBe(403)
  })

  it('unknown routes → 404 and wrong methods → 405, as JSON errors', async () => {
    const r1 = await gw.api('GET', '/v1/nothing-here')
    expect(r1.status).toBe(404)
    expect(r1.body.error.code).toBe('not_found')
    const r2 = await gw.api('PUT', '/v1/admin/keys')
    expect(r2.status).toBe(405)
    const r3 = await gw.api('GET', '/mcp/no-such-server')
    expect(r3.status).toBe(404)
  })

  it('an invalid manifest is rejected whole, every problem listed by path, nothing applied', async () => {
    const r = await gw.api(
      'POST',
      '/v1/admin/manifests',
      `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fine }
spec: { transport: http, url: "${up.url}" }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: broken }
spec: { transport: http, url: "not a url", tools: { allow: "echo" } }
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: s }
spec: { connectors: [missing] }
`,
    )
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('invalid_manifest')
    const paths = (r.body.error.details as { document: string; path: string }[]).map(
      (d) => `${d.document} ${d.path}`,
    )
    expect(paths).toEqual(
      expect.arrayContaining([
        'request#2 spec.url',
        'request#2 spec.tools.allow',
        'request#3 spec.connectors[0]',
      ]),
    )
    expect((await gw.api('GET', '/v1/admin/connectors/fine')).status).toBe(404)
  })

  it('is still healthy and serving after all of that', async () => {
    expect((await fetch(gw.url + '/readyz')).status).toBe(200)
    const c = await gw.client()
    expect(textOf(await c.callTool({ name: 'up__echo', arguments: { text: 'alive' } }))).toBe('alive')
  })
})
