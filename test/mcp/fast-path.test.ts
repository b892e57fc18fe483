import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_KEY,
  httpConnector,
  mcpHeaders,
  eventually,
  startTestGateway,
  type TestGateway,
} from '../helpers/gateway.js'
// @ts-expect-error plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { stampModern } from '../../src/mcp/fast-path.js'

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
}

/**
 * The tools/call hot path answers without the SDK when nothing but the answer can come back;
 * these tests pin down when it applies (the wire shape tells) and that its answers match the
 * SDK path's.
 */
describe('tools/call fast path', () => {
  let gw: TestGateway
  let up: { url: string; close(): Promise<void> }

  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(gw.url + '/mcp', {
      method: 'POST',
      headers: mcpHeaders(headers),
      body: JSON.stringify(body),
    })

  const session = async (capabilities: Record<string, unknown>) => {
    const res = await post(
      {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'raw', version: '1' } },
      },
      {},
    )
    await res.text()
    const sid = res.headers.get('mcp-session-id')!
    await (
      await post(
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
      )
    ).text()
    return { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
  }

  const call = (id: number, name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
  })

  beforeAll(async () => {
    up = await startUpstream({ era: '2025' })
    gw = await startTestGateway({
      manifests: httpConnector('up', up.url),
    })
  })
  afterAll(async () => {
    await gw?.close()
    await up?.close()
  })

  it('2025 session without relay capabilities: a plain JSON answer', async () => {
    const h = await session({})
    const res = await post(call(7, 'up__echo', { text: 'fast' }), h)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('mcp-session-id')).toBe(h['mcp-session-id'])
    expect(await res.json()).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: { content: [{ type: 'text', text: 'fast' }] },
    })
  })

  it('2025 session: upstream log messages upgrade the answer to a resumable SSE stream', async () => {
    const h = await session({})
    const res = await post(call(8, 'up__progress', { steps: 2 }), h)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const text = await res.text()
    expect(text.match(/^id: /gm)?.length).toBe(3)
    expect(text).toContain('"method":"notifications/message"')
    expect(text).toContain('"id":8,"result"')
  })

  it('2025 session: log messages below the level the client set are not relayed (both paths)', async () => {
    for (const caps of [{}, { elicitation: { form: {} } }]) {
      const h = await session(caps)
      const set = await post(
        { jsonrpc: '2.0', id: 1, method: 'logging/setLevel', params: { level: 'error' } },
        h,
      )
      expect(set.status).toBe(200)
      await set.text()
      const res = await post(call(2, 'up__progress', { steps: 2 }), h)
      const text = await res.text()
      expect(text).toContain('done 2')
      expect(text).not.toContain('notifications/message')
    }
  })

  it('2025 session whose client can be asked things, or a call with a progress token: the SDK path (SSE)', async () => {
    const h = await session({ elicitation: { form: {} } })
    const res = await post(call(9, 'up__echo', { text: 'sdk' }), h)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(await res.text()).toContain('"text":"sdk"')
    const plain = await session({})
    const res2 = await post(call(10, 'up__progress', { steps: 2 }, { progressToken: 'p1' }), plain)
    const text = await res2.text()
    expect(text).toContain('"progressToken":"p1"')
  })

  it('2026 stateless: JSON answer stamped like the SDK path, errors as JSON-RPC errors', async () => {
    const h = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'up__echo' }
    const res = await post(call(11, 'up__echo', { text: 'modern' }, ENVELOPE), h)
    expect(res.status).toBe(200)
    const body = (await res.json()) as any
    expect(body.result).toMatchObject({ content: [{ type: 'text', text: 'modern' }], resultType: 'complete' })
    expect(body.result._meta['io.modelcontextprotocol/serverInfo']).toEqual({
      name: 'gatehouse',
      version: '0.1.0',
    })
    const unknown = await post(call(12, 'nope', {}, ENVELOPE), { ...h, 'mcp-name': 'nope' })
    expect(((await unknown.json()) as any).error).toMatchObject({
      code: -32602,
      message: 'Unknown tool: nope',
    })
  })

  it('2026 stateless: a 2025 upstream elicitation becomes an input_required round bound to its caller', async () => {
    const h = {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'up__ask_related',
    }
    const first = (await (
      await post(call(20, 'up__ask_related', { question: 'colour?' }, ENVELOPE), h)
    ).json()) as any
    expect(first.result.resultType).toBe('input_required')
    expect(first.result.inputRequests.r).toMatchObject({
      method: 'elicitation/create',
      params: { message: 'colour?' },
    })
    const state = first.result.requestState as string
    const retry = (answer: unknown, key = ADMIN_KEY) =>
      fetch(gw.url + '/mcp', {
        method: 'POST',
        headers: mcpHeaders(h, key),
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 21,
          method: 'tools/call',
          params: {
            name: 'up__ask_related',
            arguments: { question: 'colour?' },
            _meta: ENVELOPE,
            inputResponses: { r: answer },
            requestState: state,
          },
        }),
      })
    const other = (await gw.api('POST', '/v1/admin/keys', { role: 'member' })).body.key as string
    const stolen = (await (await retry({ action: 'accept', content: { answer: 'x' } }, other)).json()) as any
    expect(stolen.error).toMatchObject({ code: -32602, message: 'unknown or expired requestState' })
    const done = (await (await retry({ action: 'accept', content: { answer: 'teal' } })).json()) as any
    expect(done.result.content[0].text).toBe('accept:teal')
    const replay = (await (await retry({ action: 'accept', content: { answer: 'again' } })).json()) as any
    expect(replay.error.code).toBe(-32602)
  })

  it('a session of another principal is refused, not served by the fast path', async () => {
    const h = await session({})
    const other = (await gw.api('POST', '/v1/admin/keys', { role: 'member' })).body.key as string
    const res = await fetch(gw.url + '/mcp', {
      method: 'POST',
      headers: mcpHeaders(h, other),
      body: JSON.stringify(call(13, 'up__echo', { text: 'x' })),
    })
    expect(res.status).toBe(404)
  })

  it('2025 session: a dropped connection does not cancel the call; notifications/cancelled does', async () => {
    const h = await session({})
    const aborts = async () => {
      const r = (await (await post(call(30, 'up__aborts', {}), h)).json()) as any
      return Number(r.result.content[0].text)
    }
    const before = await aborts()
    const ac = new AbortController()
    const dropped = fetch(gw.url + '/mcp', {
      method: 'POST',
      signal: ac.signal,
      headers: mcpHeaders(h),
      body: JSON.stringify(call(32, 'up__slow', { ms: 300 })),
    }).catch(() => undefined)
    setTimeout(() => ac.abort(), 50)
    await dropped
    await new Promise((r) => setTimeout(r, 500))
    expect(await aborts()).toBe(before)
    const slow = post(call(33, 'up__slow', { ms: 5000 }), h)
    await new Promise((r) => setTimeout(r, 100))
    await (
      await post(
        { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 33, reason: 'stop' } },
        h,
      )
    ).text()
    await (await slow).text()
    await eventually(async () => (await aborts()) === before + 1)
  })

  it('audits fast-path calls like any other', async () => {
    const h = await session({})
    await (await post(call(14, 'up__whoami', {}), h)).text()
    await eventually(async () => {
      const r = await gw.api('GET', '/v1/audit?action=tool.call&limit=100')
      return (r.body.items as any[]).some((e) => e.target === 'up/whoami' && e.outcome === 'ok')
    })
  })
})

describe('stampModern', () => {
  const INFO = 'io.modelcontextprotocol/serverInfo'

  it('adds resultType complete and the gateway as serverInfo, leaving the result itself untouched', () => {
    const result = { content: [{ type: 'text', text: 'x' }] }
    const out = stampModern(result)
    expect(out).toEqual({
      content: [{ type: 'text', text: 'x' }],
      resultType: 'complete',
      _meta: { [INFO]: { name: 'gatehouse', version: '0.1.0' } },
    })
    expect(result).toEqual({ content: [{ type: 'text', text: 'x' }] })
  })

  it("keeps the upstream's resultType and _meta entries, its serverInfo replaced by the gateway's", () => {
    const result = {
      content: [],
      resultType: 'input_required',
      _meta: { trace: 'abc', [INFO]: { name: 'upstream', version: '9' } },
    }
    const out = stampModern(result)
    expect(out.resultType).toBe('input_required')
    expect(out._meta).toEqual({ trace: 'abc', [INFO]: { name: 'gatehouse', version: '0.1.0' } })
    expect(result._meta[INFO]).toEqual({ name: 'upstream', version: '9' })
  })
})
