import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startOpenAiServer } from '../fixtures/openai-server.mjs'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { ADMIN_KEY, httpConnector, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { readSse } from '../helpers/sse.js'

let t: TestGateway
let upstream: { url: string; close(): Promise<void> }
let ai: { url: string; requests: { headers: Record<string, string>; body: any }[]; close(): Promise<void> }

beforeAll(async () => {
  process.env.TEST_LLM_KEY = 'sk-test-llm-key-0123456789'
  upstream = await startUpstream({ era: '2026', name: 'up' })
  ai = await startOpenAiServer(
    [
      {
        toolCalls: [{ name: 'up__echo', arguments: { text: 'ping' } }],
        usage: { prompt_tokens: 11, completion_tokens: 5 },
      },
      { text: 'The upstream said ping.', usage: { prompt_tokens: 20, completion_tokens: 6 } },
      { text: 'You said hello before.', usage: { prompt_tokens: 30, completion_tokens: 7 } },
    ],
    { apiKey: 'sk-test-llm-key-0123456789' },
  )
  t = await startTestGateway()
  await t.apply(
    httpConnector('up', upstream.url) +
      `---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: helper }
spec:
  type: llm
  base_url: "${ai.url}"
  model: test-model
  api_key: { env: TEST_LLM_KEY }
  system: You are terse.
  tools: { connectors: [up], deny: [up__crash] }
  max_steps: 4
`,
  )
})

afterAll(async () => {
  await t?.close()
  await ai?.close()
  await upstream?.close()
})

describe('llm agent', () => {
  it('calls a real upstream tool through the pipeline, streams tokens, records usage, and remembers the thread', async () => {
    const thread = (await t.api('POST', '/v1/threads', {})).body.thread_id
    const created = await t.api('POST', `/v1/threads/${thread}/runs`, {
      agent: 'helper',
      input: { text: 'hello' },
    })
    expect(created.status).toBe(201)
    const events = await readSse(`${t.url}/v1/runs/${created.body.id}/events`, {
      authorization: `Bearer ${ADMIN_KEY}`,
    })
    const end = events.at(-1)!
    expect(end).toMatchObject({
      event: 'end',
      data: { status: 'succeeded', output: { text: 'The upstream said ping.' } },
    })
    const tokens = events.filter((e) => e.event === 'token').map((e) => (e.data as { text: string }).text)
    expect(tokens.join('')).toBe('The upstream said ping.')
    // The model saw the gateway's tools (filtered), and the tool result went back to it.
    const first = ai.requests[0]!.body
    const offered = first.tools.map((x: any) => x.function.name)
    expect(offered).toContain('up__echo')
    expect(offered).not.toContain('up__crash')
    expect(offered.every((n: string) => n.startsWith('up__'))).toBe(true)
    expect(first.messages[0]).toEqual({ role: 'system', content: 'You are terse.' })
    expect(ai.requests[0]!.headers.authorization).toBe('Bearer sk-test-llm-key-0123456789')
    const toolMsg = ai.requests[1]!.body.messages.find((m: any) => m.role === 'tool')
    expect(toolMsg.content).toBe('ping')
    const run = (await t.api('GET', `/v1/runs/${created.body.id}`)).body
    expect(run.usage).toMatchObject({ promptTokens: 31, completionTokens: 11, calls: 2 })
    // The tool call was audited as the agent acting for the caller.
    await expect
      .poll(async () =>
        (await t.api('GET', '/v1/audit?action=tool.call')).body.items.some(
          (a: any) =>
            a.requestId === created.body.id && a.target === 'up/echo' && a.principal === 'agent:helper',
        ),
      )
      .toBe(true)

    // A second run on the thread sends the earlier conversation.
    const second = await t.api('POST', `/v1/threads/${thread}/runs`, {
      agent: 'helper',
      input: { text: 'again' },
    })
    const done = (await t.api('GET', `/v1/runs/${second.body.id}/wait?timeout=20`)).body
    expect(done.output).toEqual({ text: 'You said hello before.' })
    const history = ai.requests[2]!.body.messages.map((m: any) => m.role)
    expect(history).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'user'])
    // The key never shows up in what the gateway stored or returns.
    const all = JSON.stringify([run, done, events, (await t.api('GET', '/v1/traces')).body])
    expect(all).not.toContain('sk-test-llm-key')
  })
})
