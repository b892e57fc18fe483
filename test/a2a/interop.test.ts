import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startA2aServer } from '../fixtures/a2a-server.mjs'
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'
import {
  a2aClient,
  artifactData,
  asTask,
  collect,
  eventuallyOk,
  message,
  statesOf,
  TaskState,
  text,
} from './helpers.js'

/**
 * Interop both ways: a reference A2A server built with @a2a-js/sdk's server pieces is reachable
 * through the gateway (a `type: a2a` agent, called by an SDK client over the gateway's own A2A
 * endpoint), and a gateway agent is a remote A2A agent for another `type: a2a` agent.
 */
let t: TestGateway
let remote: {
  url: string
  requests: { headers: Record<string, string>; op: string }[]
  messages: { taskId: string; text?: string }[]
  getTask(id: string): Promise<any>
  close(): Promise<void>
}

beforeAll(async () => {
  remote = await startA2aServer({ streaming: true, delayMs: 30 })
  t = await startTestGateway({ manifests: agentManifests() })
  process.env.TEST_GATEWAY_SELF_TOKEN = `Bearer ${t.key}`
  await t.apply(`apiVersion: gatehouse/v1
kind: Agent
metadata: { name: remote }
spec:
  type: a2a
  url: "${remote.url}"
  description: The reference A2A agent, through the gateway
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: loop }
spec:
  type: a2a
  url: "${t.url}/a2a/flex"
  description: The gateway's own flex agent, called over A2A
  input: { type: object, properties: { mode: { type: string }, text: { type: string } }, required: [mode] }
  headers: { Authorization: { env: TEST_GATEWAY_SELF_TOKEN } }
`)
})

afterAll(async () => {
  await t?.close()
  await remote?.close()
})

describe('a reference A2A server, reached through the gateway’s A2A endpoint', () => {
  it('streams the remote task: its status and artifact chunks, then the output', async () => {
    const c = await a2aClient(t.url, 'remote', t.key)
    const events = await collect(c.sendMessageStream(message(text('stream 2'))))
    expect(events[0]?.payload?.$case).toBe('task')
    expect(statesOf(events).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)
    const chunks = events.flatMap((e) =>
      e.payload?.$case === 'artifactUpdate' && e.payload.value.artifact?.artifactId !== 'output'
        ? [e.payload.value.artifact!.parts[0]?.content?.value]
        : [],
    )
    expect(chunks).toEqual(['Hello, ', 'world'])
    const taskId = events[0]?.payload?.$case === 'task' ? events[0].payload.value.id : ''
    const task = await c.getTask({ tenant: '', id: taskId })
    // The remote's artifact (chunks appended) and the run's output.
    expect(task.artifacts.map((a) => a.name)).toEqual(['greeting', 'output'])
    expect(task.artifacts[0]!.parts.map((p) => p.content?.value)).toEqual(['Hello, ', 'world'])
    expect(artifactData(task).at(-1)).toBe('Hello, world')
  })

  it('input-required across two hops: the remote’s question reaches the client, the answer goes back', async () => {
    const c = await a2aClient(t.url, 'remote', t.key, { binding: 'HTTP+JSON' })
    const asked = asTask(await c.sendMessage(message(text('ask'))))
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    expect(asked.status?.message?.parts[0]?.content?.value).toBe('What is your name?')
    const done = asTask(await c.sendMessage(message(text('Ada'), { taskId: asked.id })))
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(artifactData(done).at(-1)).toBe('Hello, Ada!')
    expect(remote.messages.map((m) => m.text)).toEqual(expect.arrayContaining(['ask', 'Ada']))
  })

  it('cancelling the gateway task cancels the remote task', async () => {
    const c = await a2aClient(t.url, 'remote', t.key)
    const task = asTask(await c.sendMessage(message(text('slow'), {}, { returnImmediately: true })))
    const remoteTask = await eventuallyOk(() => remote.messages.find((m) => m.text === 'slow')?.taskId)
    await eventually(async () => (await remote.getTask(remoteTask))?.status?.state === 'TASK_STATE_WORKING')
    const cancelled = await c.cancelTask({ tenant: '', id: task.id, metadata: undefined })
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    await eventually(async () => (await remote.getTask(remoteTask))?.status?.state === 'TASK_STATE_CANCELED')
  })

  it('outbound calls are traced (traceparent upstream) and audited like tool calls', async () => {
    const c = await a2aClient(t.url, 'remote', t.key)
    const task = asTask(await c.sendMessage(message(text('echo this'))))
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    const rows = await eventuallyOk(async () => {
      const items = (await t.api('GET', '/v1/audit?action=a2a.call')).body.items as any[]
      const mine = items.filter((i) => i.requestId === task.id)
      return mine.length >= 2 ? mine : undefined
    })
    expect(rows.map((r) => r.target).sort()).toEqual(['remote/a2a:send', 'remote/a2a:wait'])
    expect(rows.every((r) => r.outcome === 'ok' && r.principalKind === 'agent')).toBe(true)
    const traceId = rows[0].traceId as string
    const spans = await eventually(async () => {
      const r = await t.api('GET', `/v1/traces/${traceId}`)
      const names = (r.body.spans ?? []).map((s: any) => s.name) as string[]
      return names.includes('a2a send remote') && names.includes('a2a wait remote') ? r.body.spans : undefined
    })
    const send = spans.find((s: any) => s.name === 'a2a send remote')
    expect(send.attributes['a2a.remote']).toBe(`${remote.url}/`)
    expect(spans.some((s: any) => s.name === 'run remote')).toBe(true)
    // The remote saw each step's own span as W3C trace context: the message went out under the
    // send step's span, and nothing reached the remote under a span that is not one of the steps.
    const traced = remote.requests.filter((q) => q.headers.traceparent?.includes(traceId))
    const spanOf = (q: { headers: Record<string, string> }) => q.headers.traceparent!.split('-')[2]
    const sent = traced.filter((q) => /message/i.test(q.op ?? ''))
    expect(sent.map((q) => q.op)).toHaveLength(1)
    expect(spanOf(sent[0]!)).toBe(send.spanId)
    const wait = spans.find((s: any) => s.name === 'a2a wait remote')
    for (const q of traced) expect([send.spanId, wait.spanId]).toContain(spanOf(q))
  })
})

describe('a gateway agent as the remote of a `type: a2a` agent (gateway → gateway)', () => {
  it('runs flex over A2A and returns its output', async () => {
    const r = await t.api('POST', '/v1/runs', { agent: 'loop', input: { mode: 'echo', text: 'over a2a' } })
    expect(r.status).toBe(201)
    const done = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(done).toMatchObject({ status: 'succeeded', output: { text: 'over a2a' } })
  })

  it('an interrupt of the inner agent becomes an interrupt of the outer run; resume answers it', async () => {
    const r = await t.api('POST', '/v1/runs', {
      agent: 'loop',
      input: { mode: 'interrupt', text: 'Proceed?' },
    })
    const paused = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(paused.status).toBe('interrupted')
    expect(paused.interrupt.question).toBe('Proceed?')
    await t.api('POST', `/v1/runs/${r.body.id}/resume`, { value: 'yes' })
    const done = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(done).toMatchObject({ status: 'succeeded', output: { answer: 'yes', after: 'got "yes"' } })
  })
})
