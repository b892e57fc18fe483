import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  a2aAgent,
  ARTIFACT_EVENT,
  cardUrlOf,
  outputOf,
  STATUS_EVENT,
  toParts,
  type A2aTaskSnapshot,
} from '../../src/agents/a2a.js'
import type { AgentEvent } from '../../src/agents/define.js'
import type { StepInfo } from '../../src/agents/define.js'
import type { A2aAgentSpec } from '../../src/manifests/schema.js'
import { MemoryAgentContext, type MemoryAgentContextOptions } from '../helpers/memory-agent-context.js'
// @ts-expect-error -- a plain .mjs fixture without type declarations
import { startA2aServer } from '../fixtures/a2a-server.mjs'

interface LoggedRequest {
  method: string
  path: string
  op?: string
  headers: Record<string, string | string[] | undefined>
  body?: { params?: { id?: string } }
}
interface A2aServer {
  url: string
  cardUrl: string
  requests: LoggedRequest[]
  messages: { messageId: string; taskId: string; contextId: string; text?: string; data?: unknown }[]
  executor: { cancelled: Set<string> }
  getTask(id: string): Promise<{ status: { state: string } } | undefined>
  close(): Promise<void>
}
const start = startA2aServer as (opts?: Record<string, unknown>) => Promise<A2aServer>

/** Thrown by the double's interrupt() when no answer is recorded yet: the run pauses there. */
class Suspended extends Error {
  constructor(readonly payload: unknown) {
    super('suspended for input')
  }
}
class Crash extends Error {}

/**
 * The shared journal double, plus what it does not model: interrupts (answers are given up
 * front, in order; a missing one suspends the run) and a crash in the middle of a named step.
 */
class TestContext extends MemoryAgentContext {
  readonly interrupts: unknown[] = []
  private readonly answers: unknown[]
  private readonly crashIn: string | undefined

  constructor(opts: MemoryAgentContextOptions & { answers?: unknown[]; crashIn?: string } = {}) {
    super({ runId: 'run_a2a', ...opts })
    this.answers = opts.answers ?? []
    this.crashIn = opts.crashIn
  }

  override async step<T>(name: string, fn: (info: StepInfo) => Promise<T> | T): Promise<T> {
    if (name !== this.crashIn) return super.step(name, fn)
    // The process dies as the step begins: nothing of it reaches the journal.
    throw new Crash(`crashed in ${name}`)
  }

  override emit(event: AgentEvent): void {
    // As the run engine does: these types belong to the run itself.
    if (['status', 'interrupt', 'end'].includes(event.type))
      throw new TypeError(`reserved event type ${event.type}`)
    super.emit(event)
  }

  override async interrupt<T = unknown>(payload: unknown): Promise<T> {
    const i = this.interrupts.length
    this.interrupts.push(payload)
    if (i < this.answers.length) return this.answers[i] as T
    throw new Suspended(payload)
  }

  get statuses(): { state: unknown; text?: unknown }[] {
    return this.events.filter((e) => e.type === STATUS_EVENT).map((e) => ({ state: e.state, text: e.text }))
  }
}

const spec = (url: string, extra: Partial<A2aAgentSpec> = {}): A2aAgentSpec => ({
  type: 'a2a',
  url,
  ...extra,
})
const ops = (srv: A2aServer) => srv.requests.map((r) => r.op)
const sends = (srv: A2aServer) =>
  srv.requests.filter((r) =>
    /^(SendMessage|SendStreamingMessage|message\/send|message\/stream)$/.test(r.op ?? ''),
  )

async function until(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('a2a agent', () => {
  let srv: A2aServer
  beforeAll(async () => {
    srv = await start({ delayMs: 30 })
  })
  afterAll(async () => {
    await srv.close()
  })

  it('echoes text, sending the step idempotency key as messageId', async () => {
    const ctx = new TestContext()
    const out = await a2aAgent('remote', spec(srv.url), {}).run('hello', ctx)
    expect(out).toEqual({ text: 'hello' })
    expect(ctx.journal.map((e) => (e.kind === 'step' ? e.name : e.kind))).toEqual(['a2a:send', 'a2a:wait'])
    const sent = srv.messages.at(-1)
    expect(sent).toMatchObject({ messageId: 'run_a2a:0', text: 'hello' })
    expect(ctx.statuses.at(-1)).toEqual({ state: 'completed', text: undefined })
  })

  it('sends {text} as a text part and any other object as a data part, and returns data', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    expect(await agent.run({ text: 'plain' }, new TestContext())).toEqual({ text: 'plain' })
    expect(srv.messages.at(-1)).toMatchObject({ text: 'plain', data: undefined })

    const input = { city: 'Oslo', days: [1, 2], text: 'not alone' }
    expect(await agent.run(input, new TestContext())).toEqual({ echo: input })
    expect(srv.messages.at(-1)).toMatchObject({ text: undefined, data: input })
  })

  it('emits the streamed status updates and artifact chunks', async () => {
    const ctx = new TestContext()
    const out = await a2aAgent('remote', spec(srv.url), {}).run('stream 3', ctx)
    expect(out).toEqual({ text: 'Hello, world' })
    const texts = ctx.statuses.filter((s) => s.state === 'working').map((s) => s.text)
    expect(texts).toEqual(['step 1/3', 'step 2/3', 'step 3/3'])
    expect(ctx.statuses.at(-1)).toEqual({ state: 'completed', text: 'done' })
    const artifacts = ctx.events.filter((e) => e.type === ARTIFACT_EVENT)
    expect(artifacts).toMatchObject([
      { append: false, lastChunk: false, artifact: { name: 'greeting', parts: [{ text: 'Hello, ' }] } },
      { append: true, lastChunk: true, artifact: { parts: [{ text: 'world' }] } },
    ])
    // The task was followed on the stream the send opened: no resubscribe, no polling.
    const taskOps = ops(srv).slice(-2)
    expect(taskOps).toEqual(['card', 'SendStreamingMessage'])
  })

  it('turns input-required into an interrupt and answers on the same task', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    const first = new TestContext()
    const paused = await agent.run('ask', first).catch((e: unknown) => e)
    expect(paused).toBeInstanceOf(Suspended)
    const asked = srv.messages.at(-1)!
    expect(first.interrupts).toEqual([
      { question: 'What is your name?', taskId: asked.taskId, agent: 'remote' },
    ])
    expect(first.statuses.at(-1)).toEqual({ state: 'input-required', text: 'What is your name?' })

    // The engine re-executes the run with the answer: send and wait replay, the reply is new.
    const before = srv.messages.length
    const resumed = new TestContext({ journal: first.journal, answers: [{ text: 'Ada' }] })
    expect(await agent.run('ask', resumed)).toEqual({ text: 'Hello, Ada!' })
    expect(srv.messages.slice(before)).toMatchObject([
      { taskId: asked.taskId, contextId: asked.contextId, text: 'Ada' },
    ])
    expect(resumed.journal.map((e) => (e.kind === 'step' ? e.name : e.kind))).toEqual([
      'a2a:send',
      'a2a:wait',
      'a2a:reply:1',
      'a2a:wait:1',
    ])
    expect(resumed.executed.steps).toBe(2)
    expect((await srv.getTask(asked.taskId))?.status.state).toBe('TASK_STATE_COMPLETED')
  })

  it('goes through several rounds of questions on one task', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    const r1 = new TestContext()
    await expect(agent.run('ask 3', r1)).rejects.toBeInstanceOf(Suspended)
    const r2 = new TestContext({ journal: r1.journal, answers: ['Ada'] })
    await expect(agent.run('ask 3', r2)).rejects.toBeInstanceOf(Suspended)
    // The answered question may still be reported right after the reply; only a new one counts.
    expect(r2.interrupts.at(-1)).toMatchObject({ question: 'Question 2?' })
    const r3 = new TestContext({ journal: r2.journal, answers: ['Ada', 'Bob'] })
    await expect(agent.run('ask 3', r3)).rejects.toBeInstanceOf(Suspended)
    expect(r3.interrupts.at(-1)).toMatchObject({ question: 'Question 3?' })
    const r4 = new TestContext({ journal: r3.journal, answers: ['Ada', 'Bob', 'Cy'] })
    expect(await agent.run('ask 3', r4)).toEqual({ text: 'Hello, Ada & Bob & Cy!' })
    expect(r4.journal.map((e) => (e.kind === 'step' ? e.name : e.kind)).slice(-4)).toEqual([
      'a2a:reply:2',
      'a2a:wait:2',
      'a2a:reply:3',
      'a2a:wait:3',
    ])
    expect(r4.executed.steps).toBe(2)
  })

  it('fails clearly when the remote task fails, is rejected or needs authentication', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    await expect(agent.run('fail', new TestContext())).rejects.toThrow(
      /a2a agent 'remote' \(http:\/\/127\.0\.0\.1:\d+\/\): remote task \S+ ended in state 'failed': requested failure/,
    )
    await expect(agent.run('reject', new TestContext())).rejects.toThrow(
      /a2a agent 'remote'.*'rejected': rejected on request/,
    )
    await expect(agent.run('auth', new TestContext())).rejects.toThrow(
      /a2a agent 'remote'.*'auth-required': credentials needed/,
    )
    // A task left waiting for credentials is not abandoned on the remote.
    const authTask = srv.messages.at(-1)!.taskId
    expect((await srv.getTask(authTask))?.status.state).toBe('TASK_STATE_CANCELED')
  })

  it('cancels the remote task when the run is cancelled, and rethrows the abort', async () => {
    const ac = new AbortController()
    const ctx = new TestContext({ signal: ac.signal })
    const before = srv.messages.length
    const running = a2aAgent('remote', spec(srv.url), {}).run('slow', ctx)
    await until(() => ctx.statuses.some((s) => s.state === 'working'))
    const taskId = srv.messages[before]!.taskId
    ac.abort(new Error('run cancelled by the test'))
    await expect(running).rejects.toThrow('run cancelled by the test')
    expect(srv.executor.cancelled.has(taskId)).toBe(true)
    expect((await srv.getTask(taskId))?.status.state).toBe('TASK_STATE_CANCELED')
    expect(ops(srv)).toContain('CancelTask')
  })

  it('leaves the remote task running when the run is drained, and the next execution finishes it', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    const ac = new AbortController()
    const drained = new TestContext({ signal: ac.signal })
    const running = agent.run('stream 6', drained)
    await until(() => drained.statuses.some((s) => s.text === 'step 1/6'))
    const taskId = srv.messages.at(-1)!.taskId
    // The engine's abort reason for a drain (or a lost lease) carries `why`.
    ac.abort(Object.assign(new Error('run aborted (drain)'), { why: 'drain' }))
    await expect(running).rejects.toThrow('run aborted (drain)')
    expect(srv.executor.cancelled.has(taskId)).toBe(false)

    const sendsBefore = sends(srv).length
    const resumed = new TestContext({ journal: drained.journal })
    expect(await agent.run('stream 6', resumed)).toEqual({ text: 'Hello, world' })
    expect(sends(srv)).toHaveLength(sendsBefore)
    expect((await srv.getTask(taskId))?.status.state).toBe('TASK_STATE_COMPLETED')
  })

  it('replays after a crash without sending the message again', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    const crashed = new TestContext({ crashIn: 'a2a:wait' })
    await expect(agent.run('stream 4', crashed)).rejects.toBeInstanceOf(Crash)
    expect(crashed.journal.map((e) => (e.kind === 'step' ? e.name : e.kind))).toEqual(['a2a:send'])
    const sendsBefore = sends(srv).length
    const messagesBefore = srv.messages.length
    const taskId = srv.messages.at(-1)!.taskId
    const logAt = srv.requests.length

    const again = new TestContext({ journal: crashed.journal })
    expect(await agent.run('stream 4', again)).toEqual({ text: 'Hello, world' })
    expect(sends(srv)).toHaveLength(sendsBefore)
    expect(srv.messages).toHaveLength(messagesBefore)
    // The same task was followed again (resubscribed while it still ran).
    const followed = srv.requests.slice(logAt).filter((r) => r.op === 'SubscribeToTask' || r.op === 'GetTask')
    expect(followed.length).toBeGreaterThan(0)
    expect(followed.every((r) => r.body?.params?.id === taskId)).toBe(true)
    expect(again.statuses.at(-1)).toEqual({ state: 'completed', text: 'done' })
    expect((await srv.getTask(taskId))?.status.state).toBe('TASK_STATE_COMPLETED')

    // A replay over the complete journal makes no request at all.
    const requestsBefore = srv.requests.length
    expect(await agent.run('stream 4', new TestContext({ journal: again.journal }))).toEqual({
      text: 'Hello, world',
    })
    expect(srv.requests).toHaveLength(requestsBefore)
  })

  it('returns mixed artifacts whole, and a bare reply message as text', async () => {
    const agent = a2aAgent('remote', spec(srv.url), {})
    const mixed = (await agent.run('mixed', new TestContext())) as { artifacts: unknown[] }
    expect(mixed.artifacts).toMatchObject([
      { name: 'result', parts: [{ text: 'summary' }, { data: { n: 1 } }] },
    ])
    expect(await agent.run('reply please', new TestContext())).toEqual({ text: 'reply: reply please' })
  })
})

describe('a2a agent discovery, transports and headers', () => {
  const servers: A2aServer[] = []
  const started = async (opts: Record<string, unknown>) => {
    const s = await start(opts)
    servers.push(s)
    return s
  }
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })

  it('finds the card from a base URL with a path, and from the card URL itself', async () => {
    const srv = await started({ basePath: '/agents/echo' })
    expect(srv.url).toMatch(/\/agents\/echo$/)
    expect(await a2aAgent('by-base', spec(`${srv.url}/`), {}).run('one', new TestContext())).toEqual({
      text: 'one',
    })
    expect(await a2aAgent('by-card', spec(srv.cardUrl), {}).run('two', new TestContext())).toEqual({
      text: 'two',
    })
    const cards = srv.requests.filter((r) => r.op === 'card').map((r) => r.path)
    expect(cards).toEqual([
      '/agents/echo/.well-known/agent-card.json',
      '/agents/echo/.well-known/agent-card.json',
    ])
    expect(srv.requests.every((r) => r.path.startsWith('/agents/echo/'))).toBe(true)
  })

  it('sends the configured headers with every request', async () => {
    const srv = await started({ requireHeaders: { 'x-api-key': 'k-123456' } })
    const out = await a2aAgent('keyed', spec(srv.url), { 'X-Api-Key': 'k-123456' }).run(
      'stream 2',
      new TestContext(),
    )
    expect(out).toEqual({ text: 'Hello, world' })
    expect(srv.requests.length).toBeGreaterThanOrEqual(2)
    expect(srv.requests.every((r) => r.headers['x-api-key'] === 'k-123456')).toBe(true)
    expect(ops(srv)).toEqual(['card', 'SendStreamingMessage'])
  })

  it('names the agent and URL on refusal and network errors, never the header values', async () => {
    const srv = await started({ requireHeaders: { 'x-api-key': 'right-key' } })
    const refused = a2aAgent('keyed', spec(srv.url), { 'X-Api-Key': 'wrong-key-value' }).run(
      'hi',
      new TestContext(),
    )
    const err = (await refused.catch((e: unknown) => e)) as Error
    expect(err.message).toMatch(/a2a agent 'keyed'/)
    expect(err.message).toContain(srv.cardUrl)
    expect(err.message).toContain('HTTP 401')
    expect(err.message).not.toContain('wrong-key-value')

    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const { port } = closed.address() as AddressInfo
    await new Promise((resolve) => closed.close(resolve))
    const down = a2aAgent('gone', spec(`http://127.0.0.1:${port}/a2a?token=sekret`), {
      Authorization: 'Bearer tok-999',
    })
    const netErr = (await down.run('hi', new TestContext()).catch((e: unknown) => e)) as Error & {
      code?: string
    }
    expect(netErr.message).toMatch(new RegExp(`a2a agent 'gone' \\(http://127\\.0\\.0\\.1:${port}/a2a\\)`))
    expect(netErr.message).toContain(
      `request to http://127.0.0.1:${port}/a2a/.well-known/agent-card.json failed`,
    )
    expect(netErr.message).toMatch(/ECONNREFUSED/)
    expect(netErr.message).not.toMatch(/tok-999|sekret/)
    expect(netErr.code).toBe('upstream_unavailable')
  })

  it('polls tasks/get over HTTP+JSON when the agent does not stream, also for input-required', async () => {
    const srv = await started({ streaming: false, bindings: ['HTTP+JSON'] })
    const agent = a2aAgent('poller', spec(srv.url), {})
    const ctx = new TestContext()
    expect(await agent.run('stream 2', ctx)).toEqual({ text: 'Hello, world' })
    expect(ops(srv)).toContain('GetTask')
    expect(ops(srv)).not.toContain('SendStreamingMessage')
    expect(ops(srv)).not.toContain('SubscribeToTask')
    expect(
      srv.requests.filter((r) => r.op === 'SendMessage').every((r) => r.path === '/rest/message:send'),
    ).toBe(true)
    expect(ctx.statuses.at(-1)).toEqual({ state: 'completed', text: 'done' })

    const first = new TestContext()
    await expect(agent.run('ask', first)).rejects.toBeInstanceOf(Suspended)
    const resumed = new TestContext({ journal: first.journal, answers: ['Grace'] })
    expect(await agent.run('ask', resumed)).toEqual({ text: 'Hello, Grace!' })
  })

  it('cancels on the deadline of timeout_ms', async () => {
    const srv = await started({ streaming: false })
    const agent = a2aAgent('slowpoke', spec(srv.url, { timeout_ms: 300 }), {})
    const err = (await agent.run('slow', new TestContext()).catch((e: unknown) => e)) as Error & {
      code?: string
    }
    expect(err.message).toMatch(/a2a agent 'slowpoke'.*did not settle within timeout_ms \(300 ms\)/)
    expect(err.code).toBe('timeout')
    const taskId = srv.messages[0]!.taskId
    expect((await srv.getTask(taskId))?.status.state).toBe('TASK_STATE_CANCELED')
  })

  it('talks to a v0.3 peer through the compatibility layer', async () => {
    const srv = await started({ protocolVersion: '0.3' })
    const agent = a2aAgent('legacy', spec(srv.url), {})
    const ctx = new TestContext()
    expect(await agent.run('stream 2', ctx)).toEqual({ text: 'Hello, world' })
    expect(await agent.run({ n: 7 }, new TestContext())).toEqual({ echo: { n: 7 } })
    expect(ops(srv)).toContain('message/stream')
    expect(
      srv.requests.filter((r) => r.op === 'message/stream').every((r) => r.headers['a2a-version'] === '0.3'),
    ).toBe(true)
    expect(ctx.statuses.map((s) => s.text)).toContain('step 2/2')
  })
})

describe('a2a agent helpers', () => {
  it('maps inputs to parts', () => {
    expect(toParts('x')).toEqual([{ text: 'x' }])
    expect(toParts({ text: 'x' })).toEqual([{ text: 'x' }])
    expect(toParts({ text: 'x', y: 1 })).toEqual([{ data: { text: 'x', y: 1 } }])
    expect(toParts([1, 2])).toEqual([{ data: [1, 2] }])
    expect(toParts(undefined)).toEqual([{ text: '' }])
  })

  it('derives the output from artifacts, else from the status message', () => {
    const snap = (extra: Partial<A2aTaskSnapshot>): A2aTaskSnapshot => ({
      taskId: 't',
      contextId: 'c',
      state: 'completed',
      artifacts: [],
      ...extra,
    })
    const art = (parts: Record<string, unknown>[]) => ({ artifactId: String(parts.length), parts })
    expect(outputOf(snap({ artifacts: [art([{ data: { a: 1 } }])] }))).toEqual({ a: 1 })
    expect(
      outputOf(snap({ artifacts: [art([{ text: 'a' }, { text: 'b' }]), art([{ text: 'c' }])] })),
    ).toEqual({
      text: 'ab\nc',
    })
    expect(outputOf(snap({ message: [{ text: 'from status' }] }))).toEqual({ text: 'from status' })
    expect(outputOf(snap({}))).toEqual({ artifacts: [] })
  })

  it('tells a card URL from a base URL', () => {
    expect(cardUrlOf('https://x.test')).toBe('https://x.test/.well-known/agent-card.json')
    expect(cardUrlOf('https://x.test/a2a/bot/')).toBe('https://x.test/a2a/bot/.well-known/agent-card.json')
    expect(cardUrlOf('https://x.test/cards/bot.json')).toBe('https://x.test/cards/bot.json')
  })
})
