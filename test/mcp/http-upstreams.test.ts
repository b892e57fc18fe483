import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  ADMIN_KEY,
  httpConnector,
  eventually,
  startTestGateway,
  textOf,
  type Era,
  type TestGateway,
} from '../helpers/gateway.js'
// @ts-expect-error plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'

type Upstream = { url: string; close(): Promise<void>; dropSessions(): void; sessionCount(): number }

describe('HTTP upstreams of both eras through /mcp', () => {
  let gw: TestGateway
  let legacy: Upstream
  let modern: Upstream

  beforeAll(async () => {
    legacy = await startUpstream({ era: '2025', name: 'legacy-up' })
    modern = await startUpstream({ era: '2026', name: 'modern-up' })
    gw = await startTestGateway({
      manifests: [
        httpConnector('old', legacy.url, 'protocol: auto'),
        httpConnector('new', modern.url, 'protocol: "2026-07-28"'),
        httpConnector('dead', 'http://127.0.0.1:9/mcp'),
      ].join('---'),
    })
  })
  afterAll(async () => {
    await gw?.close()
    await legacy?.close()
    await modern?.close()
  })

  it('negotiates each upstream era (auto falls back to 2025 sessions)', async () => {
    const conns = (await gw.api('GET', '/v1/admin/connectors')).body.items
    await eventually(async () => {
      const items = (await gw.api('GET', '/v1/admin/connectors')).body.items as any[]
      return (
        items.find((c) => c.name === 'old')?.status.era === '2025-11-25' &&
        items.find((c) => c.name === 'new')?.status.era === '2026-07-28'
      )
    })
    expect(conns.map((c: any) => c.name).sort()).toEqual(['dead', 'new', 'old'])
  })

  for (const era of ['legacy', 'modern'] as Era[]) {
    describe(`downstream client in the ${era === 'legacy' ? '2025-11-25' : '2026-07-28'} era`, () => {
      it('lists prefixed tools from live upstreams and leaves the dead one out', async () => {
        const c = await gw.client({ era })
        const names = (await c.listTools()).tools.map((t) => t.name)
        for (const n of ['old__echo', 'old__whoami', 'new__echo', 'new__ask']) expect(names).toContain(n)
        expect(names.some((n) => n.startsWith('dead__'))).toBe(false)
      })

      it('calls tools on both upstreams', async () => {
        const c = await gw.client({ era })
        expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'to 2025' } }))).toBe(
          'to 2025',
        )
        expect(textOf(await c.callTool({ name: 'new__echo', arguments: { text: 'to 2026' } }))).toBe(
          'to 2026',
        )
      })

      it('propagates a W3C traceparent upstream within the caller trace, and never the caller token', async () => {
        const c = await gw.client({ era })
        const traceId = '0af7651916cd43dd8448eb211c80319c'
        for (const tool of ['old__whoami', 'new__whoami']) {
          const seen = JSON.parse(textOf(await c.callTool({ name: tool, arguments: {} })))
          expect(seen.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
          expect(seen.authorization).toBeNull()
        }
        const raw = await fetch(gw.url + '/mcp', {
          method: 'POST',
          headers: {
            authorization: `Bearer ${ADMIN_KEY}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            traceparent: `00-${traceId}-b7ad6b7169203331-01`,
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': 'new__whoami',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: {
              name: 'new__whoami',
              arguments: {},
              _meta: {
                'io.modelcontextprotocol/protocolVersion': '2026-07-28',
                'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
                'io.modelcontextprotocol/clientCapabilities': {},
              },
            },
          }),
        })
        const text = await raw.text()
        expect(raw.status).toBe(200)
        expect(text).toContain(traceId)
      })

      it('relays progress notifications with the caller progress token', async () => {
        const c = await gw.client({ era })
        for (const tool of ['old__progress', 'new__progress']) {
          const seen: number[] = []
          const r = await c.callTool(
            { name: tool, arguments: { steps: 3 } },
            { onprogress: (p) => seen.push(p.progress) },
          )
          expect(textOf(r)).toBe('done 3')
          expect(seen).toEqual([1, 2, 3])
        }
      })

      it('answers an unknown tool with -32602 and keeps serving', async () => {
        const c = await gw.client({ era })
        await expect(c.callTool({ name: 'nope__x', arguments: {} })).rejects.toMatchObject({ code: -32602 })
        expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'still here' } }))).toBe(
          'still here',
        )
      })

      it('reads resources and gets prompts through the gateway', async () => {
        const c = await gw.client({ era })
        const res = await c.listResources()
        expect(res.resources.map((r) => r.uri)).toContain('test://greeting')
        const read = await c.readResource({ uri: 'test://greeting' })
        expect((read.contents[0] as { text: string }).text).toBe('hello')
        const prompts = await c.listPrompts()
        expect(prompts.prompts.map((p) => p.name)).toContain('old__hello')
        const got = await c.getPrompt({ name: 'old__hello', arguments: { who: 'ada' } })
        expect(JSON.stringify(got.messages)).toContain('hello ada')
      })
    })
  }

  it('relays elicitation from a 2025 upstream to a 2025 client and back (call stream and GET stream)', async () => {
    const c = await gw.client({ era: 'legacy', capabilities: { elicitation: { form: {} } } })
    const asked: string[] = []
    c.setRequestHandler('elicitation/create', async (req) => {
      asked.push(String(req.params.message))
      return { action: 'accept', content: { answer: 'ada' } }
    })
    expect(textOf(await c.callTool({ name: 'old__ask_related', arguments: { question: 'name?' } }))).toBe(
      'accept:ada',
    )
    expect(textOf(await c.callTool({ name: 'old__ask', arguments: { question: 'again?' } }))).toBe(
      'accept:ada',
    )
    expect(asked).toEqual(['name?', 'again?'])
  })

  it('relays a 2025 upstream elicitation to a 2026 client as input_required rounds (call stream and GET stream)', async () => {
    const c = await gw.client({ era: 'modern', capabilities: { elicitation: { form: {} } } })
    const asked: string[] = []
    c.setRequestHandler('elicitation/create', async (req) => {
      asked.push(String(req.params.message))
      return { action: 'accept', content: { answer: 'lin' } }
    })
    expect(textOf(await c.callTool({ name: 'old__ask_related', arguments: { question: 'who?' } }))).toBe(
      'accept:lin',
    )
    expect(textOf(await c.callTool({ name: 'old__ask', arguments: { question: 'really?' } }))).toBe(
      'accept:lin',
    )
    expect(asked).toEqual(['who?', 'really?'])
  })

  for (const era of ['legacy', 'modern'] as Era[]) {
    it(`relays a 2026 upstream's input_required round trip to a ${era} client`, async () => {
      const c = await gw.client({ era, capabilities: { elicitation: { form: {} } } })
      c.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { answer: 'grace' },
      }))
      expect(textOf(await c.callTool({ name: 'new__ask', arguments: { question: 'name?' } }))).toBe(
        'accept:grace',
      )
    })
  }

  it('works with the v1 SDK client (2025-11-25 sessions)', async () => {
    const c = new V1Client({ name: 'v1', version: '1' })
    await c.connect(
      new V1Transport(new URL(gw.url + '/mcp'), {
        requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
      }),
    )
    const tools = await c.listTools()
    expect(tools.tools.map((t) => t.name)).toContain('new__echo')
    expect(textOf(await c.callTool({ name: 'new__echo', arguments: { text: 'v1' } }))).toBe('v1')
    await c.close()
  })

  it('re-initialises an expired upstream session transparently', async () => {
    const c = await gw.client()
    expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'a' } }))).toBe('a')
    legacy.dropSessions()
    expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'b' } }))).toBe('b')
  })

  it('lets a call still running on an expired session finish while the next call re-initialises', async () => {
    const c = await gw.client()
    const slow = c.callTool({ name: 'old__slow', arguments: { ms: 400 } })
    await sleep(100)
    legacy.dropSessions()
    expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'after' } }))).toBe('after')
    expect(textOf(await slow)).toBe('slept 400')
  })

  it('reports a dead upstream as a tool error naming the connector while others work', async () => {
    await gw.apply(`
apiVersion: gatehouse/v1
kind: Server
metadata: { name: withdead }
spec: { connectors: [dead, old] }
`)
    const c = await gw.client({ path: '/mcp/withdead' })
    const names = (await c.listTools()).tools.map((t) => t.name)
    expect(names.every((n) => n.startsWith('old__'))).toBe(true)
    // The dead connector cannot be listed; a call to a name under its prefix says which upstream is down.
    const dead = await c.callTool({ name: 'dead__echo', arguments: {} })
    expect(dead.isError).toBe(true)
    expect(textOf(dead)).toMatch(/^connector dead is unavailable: /)
    expect(textOf(await c.callTool({ name: 'old__echo', arguments: { text: 'ok' } }))).toBe('ok')
  })

  it('refreshes its cached list when an upstream says its tools changed, and tells clients', async () => {
    const c = await gw.client()
    let notified = 0
    c.setNotificationHandler('notifications/tools/list_changed', async () => {
      notified++
    })
    expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('old__late_tool')
    await c.callTool({ name: 'old__add_tool', arguments: { name: 'late_tool' } })
    await eventually(async () => (await c.listTools()).tools.some((t) => t.name === 'old__late_tool'))
    expect(textOf(await c.callTool({ name: 'old__late_tool', arguments: {} }))).toBe('I am late_tool')
    await eventually(() => notified > 0)
  })

  it('hears a 2026 upstream list change through subscriptions/listen', async () => {
    const c = await gw.client({ era: 'modern' })
    expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('new__late2026')
    await c.callTool({ name: 'new__add_tool', arguments: { name: 'late2026' } })
    await eventually(async () => (await c.listTools()).tools.some((t) => t.name === 'new__late2026'))
    expect(textOf(await c.callTool({ name: 'new__late2026', arguments: {} }))).toBe('I am late2026')
  })

  it('passes a client cancellation on to the upstream', async () => {
    const c = await gw.client()
    const count = async (started: boolean) =>
      Number(textOf(await c.callTool({ name: 'old__aborts', arguments: { started } })))
    const before = await count(false)
    const startedBefore = await count(true)
    const ac = new AbortController()
    const call = c.callTool({ name: 'old__slow', arguments: { ms: 10_000 } }, { signal: ac.signal })
    // Cancel once the upstream runs the call (a cancellation before it is sent reaches nobody).
    await eventually(async () => (await count(true)) === startedBefore + 1)
    ac.abort('user changed their mind')
    await expect(call).rejects.toThrow()
    await eventually(async () => (await count(false)) === before + 1)
    const row = await eventually(async () => {
      const r = await gw.api('GET', '/v1/audit?action=tool.call&limit=100')
      // Other tests call old/slow too (and finish it): this call's row is the cancelled one.
      return (r.body.items as any[]).find((e) => e.target === 'old/slow' && e.outcome !== 'ok')
    })
    expect(row).toMatchObject({ outcome: 'cancelled', errorCode: 'cancelled' })
  })

  it('counts calls per connector and tool in /metrics', async () => {
    const c = await gw.client()
    await c.callTool({ name: 'new__echo', arguments: { text: 'm' } })
    const text = await (await fetch(gw.url + '/metrics')).text()
    expect(text).toMatch(/gatehouse_tool_calls_total\{connector="new",tool="echo",outcome="ok"\} [1-9]/)
    expect(text).toMatch(/gatehouse_tool_call_duration_seconds_bucket\{[^}]*connector="new"/)
    expect(text).toMatch(/gatehouse_upstream_up\{connector="old",tenant="default"\} 1/)
  })

  it('writes an audit row and a span per call, with an argument hash and never the arguments', async () => {
    const c = await gw.client()
    await c.callTool({ name: 'old__echo', arguments: { text: 'secret-ish payload 42' } })
    const row = await eventually(async () => {
      const r = await gw.api('GET', '/v1/audit?action=tool.call&limit=50')
      return (r.body.items as any[]).find((e) => e.target === 'old/echo')
    })
    expect(row).toMatchObject({
      tenant: 'default',
      action: 'tool.call',
      outcome: 'ok',
      principalKind: 'service',
    })
    expect(row.argsHash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify((await gw.api('GET', '/v1/audit?limit=500')).body)).not.toContain(
      'secret-ish payload',
    )
    const spans = await eventually(async () => {
      const s = (await gw.api('GET', `/v1/traces/${row.traceId}`)).body.spans as any[]
      return s.length ? s : undefined
    })
    expect(spans![0]).toMatchObject({ traceId: row.traceId, tenant: 'default', status: 'ok' })
    expect(spans![0].attributes['gatehouse.connector']).toBe('old')
  })
})
