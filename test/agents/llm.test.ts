import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import type { ToolInfo, ToolResult } from '../../src/agents/define.js'
import {
  llmAgent,
  selectTools,
  toolResultText,
  userText,
  type LlmAgentOptions,
} from '../../src/agents/llm.js'
import type { LlmAgentSpec } from '../../src/manifests/schema.js'
// @ts-expect-error plain JS fixture
import { startOpenAiServer as startUntyped } from '../fixtures/openai-server.mjs'
import { MemoryAgentContext } from '../helpers/memory-agent-context.js'

interface RecordedRequest {
  method: string
  path: string
  headers: Record<string, string | string[] | undefined>
  body: any
}
interface OpenAiServer {
  url: string
  requests: RecordedRequest[]
  remaining(): number
  fail(status?: number, message?: string): void
  close(): Promise<void>
}
const startOpenAiServer = startUntyped as (
  script: unknown[],
  opts?: { apiKey?: string; fail?: { status: number; message?: string }; model?: string },
) => Promise<OpenAiServer>

const KEY = 'sk-test-5ecret-d0-not-leak-0123456789'

const TOOLS: ToolInfo[] = [
  {
    name: 'files__read',
    description: 'Reads a file',
    inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  { name: 'files__write', description: 'Writes a file', inputSchema: { type: 'object', properties: {} } },
  { name: 'web__search', description: 'Searches the web', inputSchema: { type: 'object', properties: {} } },
  { name: 'web__fetch', inputSchema: { type: 'object', properties: {} } },
]

const servers: OpenAiServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

async function server(script: unknown[], opts: Parameters<typeof startOpenAiServer>[1] = { apiKey: KEY }) {
  const s = await startOpenAiServer(script, opts)
  servers.push(s)
  return s
}

function spec(url: string, over: Partial<LlmAgentSpec> = {}): LlmAgentSpec {
  return { type: 'llm', base_url: url, model: 'gpt-test', max_steps: 8, ...over }
}

function agent(url: string, over: Partial<LlmAgentSpec> = {}, opts: LlmAgentOptions = { maxRetries: 0 }) {
  return llmAgent('helper', spec(url, over), KEY, opts)
}

const tokens = (ctx: MemoryAgentContext) =>
  ctx.events.filter((e) => e.type === 'token').map((e) => e.text as string)

describe('llm agent: answers', () => {
  it('streams a plain answer: token events, usage, system prompt, state', async () => {
    const ai = await server([
      { text: 'Hello there, traveller.', usage: { prompt_tokens: 21, completion_tokens: 5 } },
    ])
    const ctx = new MemoryAgentContext()
    const out = await agent(ai.url, { system: 'You are terse.', temperature: 0.2, max_tokens: 50 }).run(
      { text: 'Say hello' },
      ctx,
    )

    expect(out).toEqual({ text: 'Hello there, traveller.' })
    expect(tokens(ctx)).toEqual(['Hello ', 'there, ', 'traveller.'])
    expect(ctx.usage).toEqual([{ model: 'gpt-test', promptTokens: 21, completionTokens: 5 }])

    expect(ai.requests).toHaveLength(1)
    const req = ai.requests[0]!
    expect(req.path).toBe('/v1/chat/completions')
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`)
    expect(req.body).toMatchObject({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_tokens: 50,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hello' },
      ],
    })
    // No tools available to the run: no `tools` field at all (some servers reject []).
    expect(req.body).not.toHaveProperty('tools')

    // The system prompt is configuration, not conversation: it is not stored.
    expect(ctx.state.messages).toEqual([
      { role: 'user', content: 'Say hello' },
      { role: 'assistant', content: 'Hello there, traveller.' },
    ])
  })

  it('uses a bare string as the message and JSON for structured input', async () => {
    const ai = await server(['a', 'b', 'c'])
    await agent(ai.url).run('plain string', new MemoryAgentContext())
    await agent(ai.url).run({ text: 'hi', lang: 'fr' }, new MemoryAgentContext())
    await agent(ai.url).run([1, 2], new MemoryAgentContext())
    expect(ai.requests.map((r) => r.body.messages.at(-1).content)).toEqual([
      'plain string',
      '{"text":"hi","lang":"fr"}',
      '[1,2]',
    ])
    expect(userText(undefined)).toBe('null')
  })

  it('remembers the conversation across runs on the same thread state', async () => {
    const ai = await server(['Nice to meet you, Ada.', 'Your name is Ada.'])
    const a = agent(ai.url, { system: 'sys' })
    const first = new MemoryAgentContext({ threadId: 't1' })
    await a.run({ text: 'My name is Ada.' }, first)
    const second = new MemoryAgentContext({ threadId: 't1', state: { ...first.state } })
    const out = await a.run({ text: 'What is my name?' }, second)

    expect(out.text).toBe('Your name is Ada.')
    expect(ai.requests[1]!.body.messages).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: 'Nice to meet you, Ada.' },
      { role: 'user', content: 'What is my name?' },
    ])
    expect(second.state.messages).toHaveLength(4)
  })

  it('refuses a thread whose state.messages is not an array instead of overwriting it', async () => {
    const ai = await server(['never'])
    const ctx = new MemoryAgentContext({ state: { messages: 'someone else owns this' } })
    await expect(agent(ai.url).run('hi', ctx)).rejects.toThrow(
      /llm agent 'helper'.*"messages" is not an array/,
    )
    expect(ai.requests).toHaveLength(0)
  })

  it('sends no Authorization header without a key, and never reads OPENAI_API_KEY', async () => {
    const ai = await server(['ok'], {})
    const saved = process.env.OPENAI_API_KEY
    process.env.OPENAI_API_KEY = 'sk-from-the-gateway-environment'
    try {
      const out = await llmAgent('local', spec(ai.url), undefined, { maxRetries: 0 }).run(
        'hi',
        new MemoryAgentContext(),
      )
      expect(out.text).toBe('ok')
    } finally {
      if (saved === undefined) delete process.env.OPENAI_API_KEY
      else process.env.OPENAI_API_KEY = saved
    }
    expect(ai.requests[0]!.headers).not.toHaveProperty('authorization')
  })
})

describe('llm agent: tools', () => {
  it('runs a tool call round trip and feeds the result back', async () => {
    const ai = await server([
      {
        toolCalls: [{ id: 'call_1', name: 'files__read', arguments: { path: 'notes/a.txt' }, argChunks: 4 }],
        usage: { prompt_tokens: 40, completion_tokens: 9 },
      },
      { text: 'The file says hello.', usage: { prompt_tokens: 60, completion_tokens: 6 } },
    ])
    const calls: Array<[string, Record<string, unknown>]> = []
    const ctx = new MemoryAgentContext({
      tools: TOOLS,
      callTool: (tool, args) => {
        calls.push([tool, args])
        return {
          content: [
            { type: 'text', text: 'hello' },
            { type: 'text', text: 'world' },
          ],
        }
      },
    })
    const out = await agent(ai.url).run({ text: 'What is in notes/a.txt?' }, ctx)

    expect(out.text).toBe('The file says hello.')
    expect(calls).toEqual([['files__read', { path: 'notes/a.txt' }]])
    expect(ai.requests).toHaveLength(2)

    // Tool definitions as Chat Completions functions.
    expect(ai.requests[0]!.body.tools).toEqual(
      TOOLS.map((t) => ({
        type: 'function',
        function: {
          name: t.name,
          ...(t.description ? { description: t.description } : {}),
          parameters: t.inputSchema,
        },
      })),
    )
    // The streamed tool call was reassembled and the result was sent back.
    const assistant = {
      role: 'assistant',
      content: null,
      tool_calls: [
        {
          id: 'call_1',
          type: 'function',
          function: { name: 'files__read', arguments: '{"path":"notes/a.txt"}' },
        },
      ],
    }
    const toolMsg = { role: 'tool', tool_call_id: 'call_1', content: 'hello\nworld' }
    expect(ai.requests[1]!.body.messages).toEqual([
      { role: 'user', content: 'What is in notes/a.txt?' },
      assistant,
      toolMsg,
    ])
    expect(ctx.state.messages).toEqual([
      { role: 'user', content: 'What is in notes/a.txt?' },
      assistant,
      toolMsg,
      { role: 'assistant', content: 'The file says hello.' },
    ])

    // Events name the tool and the outcome, never arguments or results.
    const toolEvents = ctx.events.filter((e) => e.type !== 'token')
    expect(toolEvents).toEqual([
      { type: 'tool_call', tool: 'files__read', callId: 'call_1' },
      { type: 'tool_result', tool: 'files__read', callId: 'call_1', status: 'ok' },
    ])
    expect(JSON.stringify(ctx.events)).not.toContain('notes/a.txt')
    expect(JSON.stringify(ctx.events)).not.toContain('world')
    expect(ctx.usage.map((u) => [u.promptTokens, u.completionTokens])).toEqual([
      [40, 9],
      [60, 6],
    ])
  })

  it('reports tool errors, refusals, structured results and unoffered tools to the model', async () => {
    const ai = await server([
      {
        toolCalls: [
          { id: 'c1', name: 'files__read', arguments: { path: 'missing' } },
          { id: 'c2', name: 'files__write', arguments: {} },
          { id: 'c3', name: 'web__search', arguments: '' },
          { id: 'c4', name: 'web__fetch', arguments: { url: 'x' } },
        ],
      },
      'done',
    ])
    const calls: string[] = []
    const ctx = new MemoryAgentContext({
      tools: TOOLS,
      callTool: (tool): ToolResult => {
        calls.push(tool)
        if (tool === 'files__read')
          return { isError: true, content: [{ type: 'text', text: 'ENOENT: missing' }] }
        if (tool === 'files__write') throw new Error('policy denied files__write')
        return { content: [], structuredContent: { hits: 2 } }
      },
    })
    const out = await agent(ai.url, { tools: { deny: ['web__fetch'] } }).run('go', ctx)
    expect(out.text).toBe('done')
    // web__fetch was not offered, so it is never forwarded to the gateway.
    expect(calls).toEqual(['files__read', 'files__write', 'web__search'])

    const sent = ai.requests[1]!.body.messages.filter((m: any) => m.role === 'tool')
    expect(sent.map((m: any) => m.tool_call_id)).toEqual(['c1', 'c2', 'c3', 'c4'])
    expect(sent[0].content).toMatch(/^Error: .*ENOENT: missing/)
    expect(sent[1].content).toMatch(/^Error: .*refused: policy denied files__write/)
    expect(sent[2].content).toBe('{"hits":2}')
    expect(sent[3].content).toMatch(/^Error: there is no tool named "web__fetch"/)
    expect(ctx.events.filter((e) => e.type === 'tool_result').map((e) => e.status)).toEqual([
      'error',
      'refused',
      'ok',
      'unavailable',
    ])
  })

  it('tells the model when tool-call arguments are not valid JSON, without calling the tool', async () => {
    const ai = await server([
      { toolCalls: [{ id: 'bad', name: 'files__read', arguments: '{"path": "a.txt"' }] },
      { toolCalls: [{ id: 'arr', name: 'files__read', arguments: '["a.txt"]' }] },
      'Sorry, I could not read it.',
    ])
    let called = 0
    const ctx = new MemoryAgentContext({
      tools: TOOLS,
      callTool: () => {
        called++
        return { content: [] }
      },
    })
    const out = await agent(ai.url).run('read a.txt', ctx)
    expect(out.text).toBe('Sorry, I could not read it.')
    expect(called).toBe(0)
    const second = ai.requests[1]!.body.messages.at(-1)
    expect(second).toMatchObject({ role: 'tool', tool_call_id: 'bad' })
    expect(second.content).toMatch(/arguments for tool "files__read" were not valid JSON/)
    const third = ai.requests[2]!.body.messages.at(-1)
    expect(third.content).toMatch(/not valid JSON \(expected a JSON object\)/)
    expect(ctx.events.filter((e) => e.type === 'tool_result').map((e) => e.status)).toEqual([
      'invalid_arguments',
      'invalid_arguments',
    ])
  })

  const filterCases: Array<[string, LlmAgentSpec['tools'], string[] | undefined]> = [
    [
      'no tools field: every tool of the run',
      undefined,
      ['files__read', 'files__write', 'web__search', 'web__fetch'],
    ],
    ['connectors', { connectors: ['files'] }, ['files__read', 'files__write']],
    [
      'connectors + allow (union)',
      { connectors: ['files'], allow: ['web__fetch'] },
      ['files__read', 'files__write', 'web__fetch'],
    ],
    ['allow only', { allow: ['web__search', 'nope__x'] }, ['web__search']],
    ['deny only', { deny: ['files__write'] }, ['files__read', 'web__search', 'web__fetch']],
    ['deny wins over connectors', { connectors: ['web'], deny: ['web__fetch'] }, ['web__search']],
    ['a prefix is not a connector', { connectors: ['file', 'we'] }, undefined],
  ]
  it.each(filterCases)('filters the tools offered: %s', async (_label, tools, expected) => {
    const ai = await server(['ok'])
    const over: Partial<LlmAgentSpec> = tools ? { tools } : {}
    await agent(ai.url, over).run('hi', new MemoryAgentContext({ tools: TOOLS }))
    const sent = ai.requests[0]!.body.tools
    if (expected === undefined) expect(sent).toBeUndefined()
    else expect(sent.map((t: any) => t.function.name)).toEqual(expected)
  })

  it('selectTools and toolResultText handle the edges', () => {
    expect(selectTools(TOOLS, { connectors: [] })).toEqual([])
    expect(selectTools(TOOLS, {}).map((t) => t.name)).toHaveLength(4)
    expect(toolResultText({})).toBe('(the tool returned no content)')
    expect(toolResultText({ content: [{ type: 'image', data: 'AA==', mimeType: 'image/png' }] })).toBe(
      '[{"type":"image","data":"AA==","mimeType":"image/png"}]',
    )
    expect(
      toolResultText({ content: [{ type: 'text', text: 'text wins' }], structuredContent: { a: 1 } }),
    ).toBe('text wins')
  })
})

describe('llm agent: limits and failures', () => {
  it('fails clearly after max_steps model calls without a final answer', async () => {
    const loop = { toolCalls: [{ name: 'files__read', arguments: { path: 'again' } }] }
    const ai = await server([loop, loop, loop])
    let called = 0
    const ctx = new MemoryAgentContext({
      tools: TOOLS,
      callTool: () => (called++, { content: [{ type: 'text', text: 'more' }] }),
    })
    await expect(llmAgent('looper', spec(ai.url, { max_steps: 2 }), KEY).run('go', ctx)).rejects.toThrow(
      "llm agent 'looper': max_steps (2) was reached without a final answer",
    )
    expect(ai.requests).toHaveLength(2)
    // The tool calls of the last permitted model call are not run: no model would see their results.
    expect(called).toBe(1)
    expect(ctx.state).toEqual({})
  })

  it('reports an upstream 500 with the agent and status, without the key', async () => {
    const ai = await server([{ error: { status: 500, message: 'The server had an error' } }])
    const err = await agent(ai.url)
      .run('hi', new MemoryAgentContext())
      .then(
        () => undefined,
        (e: Error) => e,
      )
    expect(err?.message).toBe(
      `llm agent 'helper': the model request to ${new URL(ai.url).host} failed with HTTP 500: The server had an error`,
    )
    expect(err?.message).not.toContain(KEY)
    expect(ai.requests).toHaveLength(1)
  })

  it('retries a transient failure once by default', async () => {
    const ai = await server([{ error: { status: 503, message: 'overloaded' } }, 'recovered'])
    const ctx = new MemoryAgentContext()
    const out = await llmAgent('helper', spec(ai.url), KEY).run('hi', ctx)
    expect(out.text).toBe('recovered')
    expect(ai.requests).toHaveLength(2)
    expect(tokens(ctx)).toEqual(['recovered'])
  })

  it('reports a 401 without the key, even when the upstream echoes it', async () => {
    const wrong = await server(['never'])
    const err = await llmAgent('helper', spec(wrong.url), 'sk-wrong-key-abcdef', { maxRetries: 0 })
      .run('hi', new MemoryAgentContext())
      .catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toMatch(
      /^llm agent 'helper': the model request to 127\.0\.0\.1:\d+ failed with HTTP 401: Incorrect API key/,
    )
    expect((err as Error).message).not.toContain('sk-wrong-key-abcdef')
    expect(wrong.remaining()).toBe(1)

    const echo = await server([{ error: { status: 401, message: `Incorrect API key provided: ${KEY}.` } }])
    const err2 = await agent(echo.url)
      .run('hi', new MemoryAgentContext())
      .catch((e: Error) => e)
    expect((err2 as Error).message).toContain('HTTP 401: Incorrect API key provided: [redacted].')
    expect((err2 as Error).message).not.toContain(KEY)
  })

  it('reports a refused connection', async () => {
    const ai = await server([])
    const url = ai.url
    await ai.close()
    const err = await agent(url)
      .run('hi', new MemoryAgentContext())
      .catch((e: Error) => e)
    expect((err as Error).message).toMatch(
      /^llm agent 'helper': could not reach the model endpoint 127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    )
  })

  it('reports an error event inside the stream', async () => {
    // A server that answers 200 and then reports an error in the stream.
    const { createServer } = await import('node:http')
    const bad = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end(
        `data: ${JSON.stringify({ error: { message: 'context length exceeded', type: 'invalid_request_error' } })}\n\n`,
      )
    })
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r))
    try {
      const port = (bad.address() as { port: number }).port
      const err = await agent(`http://127.0.0.1:${port}/v1`)
        .run('hi', new MemoryAgentContext())
        .catch((e: Error) => e)
      expect((err as Error).message).toBe(
        `llm agent 'helper': the model stream from 127.0.0.1:${port} reported an error: context length exceeded`,
      )
    } finally {
      await new Promise((r) => bad.close(r))
    }
  })

  it('honours ctx.signal mid-stream', async () => {
    const ai = await server([{ text: 'one two three four', stallAfter: 2 }])
    const ac = new AbortController()
    const ctx = new MemoryAgentContext({ signal: ac.signal })
    const started = Date.now()
    const running = agent(ai.url).run('hi', ctx)
    while (tokens(ctx).length < 2) await new Promise((r) => setTimeout(r, 5))
    ac.abort(new Error('run cancelled'))
    await expect(running).rejects.toThrow('run cancelled')
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(tokens(ctx)).toEqual(['one ', 'two '])
    expect(ctx.journal.filter((e) => e.kind === 'step' && e.name === 'model')).toHaveLength(0)
  })

  it('fails a stream that stalls longer than the timeout', async () => {
    const ai = await server([{ text: 'one two', stallAfter: 1 }])
    await expect(
      agent(ai.url, {}, { maxRetries: 0, timeoutMs: 300 }).run('hi', new MemoryAgentContext()),
    ).rejects.toThrow(/^llm agent 'helper': the model stream from 127\.0\.0\.1:\d+ stalled for 300 ms$/)
  })
})

describe('llm agent: durability', () => {
  const script = () => [
    { toolCalls: [{ id: 'c1', name: 'files__read', arguments: { path: 'a' } }] },
    { text: 'It says A.', usage: { prompt_tokens: 3, completion_tokens: 2 } },
  ]

  it('replays a finished run from the journal without calling the model or tools', async () => {
    const ai = await server(script())
    const a = agent(ai.url)
    const initial = { messages: [{ role: 'user', content: 'earlier' }] }
    const first = new MemoryAgentContext({
      state: initial,
      tools: TOOLS,
      callTool: () => ({ content: [{ type: 'text', text: 'A' }] }),
    })
    const out1 = await a.run('read a', first)
    expect(ai.requests).toHaveLength(2)

    const replay = new MemoryAgentContext({
      state: initial,
      journal: first.journal,
      tools: [],
      callTool: () => {
        throw new Error('a replay must not call tools')
      },
    })
    const out2 = await a.run('read a', replay)
    expect(out2).toEqual(out1)
    expect(ai.requests).toHaveLength(2)
    expect(replay.executed).toEqual({ steps: 0, toolCalls: 0, listTools: 0, setState: 0 })
    expect(replay.replayed).toBe(true)
    expect(replay.usage).toEqual([])
    expect(tokens(replay)).toEqual([])
    expect(replay.state).toEqual(first.state)
  })

  it('resumes after a crash: journaled model calls are not repeated', async () => {
    const ai = await server(script())
    const a = agent(ai.url)
    let toolRuns = 0
    const callTool = () => (toolRuns++, { content: [{ type: 'text', text: 'A' }] })
    const first = new MemoryAgentContext({ tools: TOOLS, callTool })
    await a.run('read a', first)
    expect(first.journal.map((e) => (e.kind === 'step' ? e.name : e.kind))).toEqual([
      'tools',
      'model',
      'tool',
      'model',
      'state',
    ])

    // The process died right after the first model call was journaled.
    const crashed = first.journal.slice(0, 2)
    const again = await server(script().slice(1))
    const resumed = agent(again.url)
    const ctx = new MemoryAgentContext({ journal: crashed, tools: TOOLS, callTool })
    const out = await resumed.run('read a', ctx)
    expect(out.text).toBe('It says A.')
    expect(again.requests).toHaveLength(1)
    expect(again.requests[0]!.body.messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'tool'])
    expect(toolRuns).toBe(2)
    expect(ctx.executed).toEqual({ steps: 1, toolCalls: 1, listTools: 0, setState: 1 })
    expect(ctx.usage).toEqual([{ model: 'gpt-test', promptTokens: 3, completionTokens: 2 }])
  })
})

describe('openai-server fixture', () => {
  it('speaks the non-streaming format to the real client, and checks the key', async () => {
    const ai = await server([
      { toolCalls: [{ id: 'c9', name: 'web__search', arguments: { q: 'x' } }] },
      'plain',
    ])
    const client = new OpenAI({ apiKey: KEY, baseURL: ai.url, maxRetries: 0 })
    const r = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'q' }],
    })
    expect(r.object).toBe('chat.completion')
    expect(r.choices[0]!.finish_reason).toBe('tool_calls')
    expect(r.choices[0]!.message.tool_calls).toEqual([
      { id: 'c9', type: 'function', function: { name: 'web__search', arguments: '{"q":"x"}' } },
    ])
    expect(r.usage?.total_tokens).toBe((r.usage?.prompt_tokens ?? 0) + (r.usage?.completion_tokens ?? 0))
    const r2 = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'q' }],
    })
    expect(r2.choices[0]!.message.content).toBe('plain')

    const anon = new OpenAI({ apiKey: 'wrong', baseURL: ai.url, maxRetries: 0 })
    await expect(anon.chat.completions.create({ model: 'm', messages: [] })).rejects.toMatchObject({
      status: 401,
    })
    const exhausted = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'q' }] })
      .catch((e: Error) => e)
    expect((exhausted as Error).message).toContain('script is exhausted')
  })
})
