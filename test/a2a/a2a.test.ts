import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Role, type Task } from '@a2a-js/sdk'
import { TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError } from '@a2a-js/sdk/errors'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { eventually, httpConnector, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'
import {
  a2aClient,
  artifactData,
  asTask,
  collect,
  data,
  message,
  statesOf,
  TaskState,
  text,
  type Binding,
} from './helpers.js'

let t: TestGateway
let member: string
let member2: string
let auditor: string
let globex: string

beforeAll(async () => {
  t = await startTestGateway({ manifests: agentManifests() })
  const key = async (role: string, tenant?: string) =>
    (await t.api('POST', '/v1/admin/keys', { role, ...(tenant ? { tenant } : {}) })).body.key as string
  member = await key('member')
  member2 = await key('member')
  auditor = await key('auditor')
  await t.api('POST', '/v1/admin/tenants', { name: 'globex' })
  await t.apply(agentManifests('globex'))
  globex = await key('admin', 'globex')
})
afterAll(async () => t?.close())

/** A raw JSON-RPC call to an agent's endpoint. */
async function rpc(
  agent: string,
  body: unknown,
  opts: { key?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${t.url}/a2a/${agent}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${opts.key ?? t.key}`,
      'content-type': 'application/json',
      'a2a-version': '1.0',
      ...opts.headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const txt = await res.text()
  let parsed: unknown = txt
  try {
    parsed = JSON.parse(txt)
  } catch {
    // SSE or empty
  }
  return { status: res.status, body: parsed }
}

const call = (method: string, params: unknown, id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method,
  params,
})

/** A finished task of `flex` (echo), for error cases on terminal tasks. */
async function finishedTask(key = t.key): Promise<Task> {
  const c = await a2aClient(t.url, 'flex', key)
  const task = asTask(await c.sendMessage(message(data({ mode: 'echo', text: 'done' }))))
  expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
  return task
}

describe('agent cards', () => {
  const card = (agent: string, headers: Record<string, string> = {}, key = t.key) =>
    fetch(`${t.url}/a2a/${agent}/.well-known/agent-card.json`, {
      headers: { authorization: `Bearer ${key}`, ...headers },
    })

  it('serves an A2A 1.0 card built from the manifest: interfaces, capabilities, bearer security, skills', async () => {
    const res = await card('typed', { 'a2a-version': '1.0' })
    expect(res.status).toBe(200)
    const c = (await res.json()) as any
    const url = `${t.url}/a2a/typed`
    expect(c.name).toBe('typed')
    expect(c.description).toBe('Adds two numbers')
    expect(c.supportedInterfaces).toEqual([
      { url, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' },
      { url, protocolBinding: 'JSONRPC', protocolVersion: '0.3' },
    ])
    expect(c.capabilities).toEqual({ streaming: true, pushNotifications: true, extendedAgentCard: true })
    expect(c.securitySchemes.gatehouse.httpAuthSecurityScheme.scheme).toBe('Bearer')
    expect(c.securityRequirements).toEqual([{ schemes: { gatehouse: { list: [] } } }])
    expect(c.skills).toHaveLength(1)
    expect(c.skills[0].id).toBe('typed')
    expect(c.skills[0].description).toContain('Adds two numbers')
    expect(c.skills[0].description).toContain('a (number, required)')
    expect(c.defaultInputModes[0]).toBe('application/json')
  })

  it('serves the A2A 0.3 shape to a client that does not ask for 1.0, with the 1.0 interfaces embedded', async () => {
    const c = (await (await card('flex')).json()) as any
    expect(c.url).toBe(`${t.url}/a2a/flex`)
    expect(c.preferredTransport).toBe('JSONRPC')
    expect(c.protocolVersion).toBe('0.3')
    expect(c.securitySchemes.gatehouse).toMatchObject({ type: 'http', scheme: 'Bearer' })
    expect(c.supportedInterfaces).toHaveLength(3)
  })

  it('is public for tenant default (discovery needs no key); a bad key is 401; unknown agents are 404', async () => {
    const anon = await fetch(`${t.url}/a2a/flex/.well-known/agent-card.json`)
    expect(anon.status).toBe(200)
    expect(((await anon.json()) as { name: string }).name).toBe('flex')
    const bad = await fetch(`${t.url}/a2a/flex/.well-known/agent-card.json`, {
      headers: { authorization: 'Bearer gk_not_a_real_key_000000000000' },
    })
    expect(bad.status).toBe(401)
    expect(bad.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect((await card('nope')).status).toBe(404)
  })

  it('lists the tenant’s agents, and another tenant sees its own', async () => {
    const list = await t.api('GET', '/a2a')
    expect(list.body.agents.map((a: any) => a.name)).toEqual(['flex', 'typed'])
    const g = await t.api('GET', '/a2a', undefined, globex)
    expect(g.body.agents.map((a: any) => a.supportedInterfaces[0].url)).toEqual([
      `${t.url}/a2a/flex`,
      `${t.url}/a2a/typed`,
    ])
  })

  it('the authenticated extended card carries the exact input schema (SDK client getAgentCard)', async () => {
    for (const binding of ['JSONRPC', 'HTTP+JSON'] as Binding[]) {
      const c = await a2aClient(t.url, 'typed', member, { binding })
      const extended = await c.getAgentCard()
      const ext = extended.capabilities?.extensions[0]
      expect(ext?.uri).toBe('urn:gatehouse:a2a:input-schema:v1')
      expect(ext?.params?.inputSchema).toMatchObject({
        type: 'object',
        properties: { a: { type: 'number' }, b: { type: 'number' } },
      })
      expect(extended.skills[0]?.examples).toEqual(['{"a":1,"b":1}'])
    }
  })
})

describe.each(['JSONRPC', 'HTTP+JSON'] as Binding[])('the %s binding (SDK client)', (binding) => {
  it('send: a data part is the input, the output is the artifact, the task is the run', async () => {
    const c = await a2aClient(t.url, 'typed', member, { binding })
    expect(c.protocolVersion).toBe('1.0')
    const task = asTask(await c.sendMessage(message(data({ a: 2, b: 3 }))))
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(artifactData(task)).toEqual([{ sum: 5 }])
    expect(task.artifacts[0]?.artifactId).toBe('output')
    expect(task.history[0]?.role).toBe(Role.ROLE_USER)
    const run = await t.api('GET', `/v1/runs/${task.id}`, undefined, member)
    expect(run.body).toMatchObject({ status: 'succeeded', agent: 'typed', thread_id: task.contextId })
    expect(run.body.input).toEqual({ a: 2, b: 3 })
  })

  it('send: a text part is the input { text }; input that fails the schema is an invalid-params error', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    await expect(c.sendMessage(message(text('hello')))).rejects.toThrow(/does not match agent flex's schema/)
    const both = asTask(await c.sendMessage(message([{ text: 'hi there' }, { data: { mode: 'echo' } }])))
    expect(artifactData(both)).toEqual(['hi there'])
  })

  it('stream: the task first, then status and artifact updates from the run, closing at completion', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const events = await collect(c.sendMessageStream(message(data({ mode: 'steps', steps: 3, sleepMs: 20 }))))
    expect(events[0]?.payload?.$case).toBe('task')
    const progress = events.filter(
      (e) =>
        e.payload?.$case === 'statusUpdate' &&
        e.payload.value.metadata?.['io.gatehouse/event'] === 'progress',
    )
    expect(progress).toHaveLength(3)
    const artifact = events.find((e) => e.payload?.$case === 'artifactUpdate')
    expect(
      artifact?.payload?.$case === 'artifactUpdate' && artifact.payload.value.artifact?.parts[0]?.content,
    ).toEqual({
      $case: 'data',
      value: { done: [0, 10, 20] },
    })
    expect(statesOf(events).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)
  })

  it('subscribe after a disconnect resumes from the run’s event log', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const ac = new AbortController()
    const first = await collect(
      c.sendMessageStream(message(data({ mode: 'steps', steps: 6, sleepMs: 150 })), { signal: ac.signal }),
      (e) => e.payload?.$case === 'statusUpdate',
    )
    ac.abort()
    const taskId = first[0]?.payload?.$case === 'task' ? first[0].payload.value.id : ''
    expect(taskId).toBeTruthy()
    const rest = await collect(c.resubscribeTask({ tenant: '', id: taskId }))
    expect(rest[0]?.payload?.$case).toBe('task')
    expect(statesOf(rest).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)
    const steps = [...first, ...rest].flatMap((e) =>
      e.payload?.$case === 'statusUpdate' &&
      e.payload.value.status?.message?.parts[0]?.content?.$case === 'data'
        ? [(e.payload.value.status.message.parts[0].content.value as { step: number }).step]
        : [],
    )
    // Nothing the client saw twice, and the end is there.
    expect(new Set(steps).size).toBe(steps.length)
    const done = await c.getTask({ tenant: '', id: taskId, historyLength: 0 })
    expect(artifactData(done)).toEqual([{ done: [0, 10, 20, 30, 40, 50] }])
    expect(done.history).toEqual([])
  })

  it('cancel cancels the run; a second cancel is TaskNotCancelable; subscribing to it is UnsupportedOperation', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const started = asTask(
      await c.sendMessage(message(data({ mode: 'hang' }), {}, { returnImmediately: true })),
    )
    expect([TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING]).toContain(started.status?.state)
    const cancelled = await c.cancelTask({ tenant: '', id: started.id, metadata: undefined })
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    expect((await t.api('GET', `/v1/runs/${started.id}`, undefined, member)).body.status).toBe('cancelled')
    await expect(c.cancelTask({ tenant: '', id: started.id, metadata: undefined })).rejects.toBeInstanceOf(
      TaskNotCancelableError,
    )
    await expect(collect(c.resubscribeTask({ tenant: '', id: started.id }))).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    )
  })

  it('input-required round trip: the interrupt is the status message, the next message on the task answers it', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const asked = asTask(await c.sendMessage(message(data({ mode: 'interrupt', text: 'Deploy to prod?' }))))
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    expect(asked.status?.message?.role).toBe(Role.ROLE_AGENT)
    expect(asked.status?.message?.parts[0]?.content).toEqual({ $case: 'text', value: 'Deploy to prod?' })
    const done = asTask(
      await c.sendMessage(message(text('yes'), { taskId: asked.id, contextId: asked.contextId })),
    )
    expect(done.id).toBe(asked.id)
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(artifactData(done)).toEqual([{ before: 'prepared', answer: 'yes', after: 'got "yes"' }])
    const history = done.history.map((m) => [m.role, m.parts[0]?.content?.value])
    expect(history.slice(1)).toEqual([
      [Role.ROLE_AGENT, 'Deploy to prod?'],
      [Role.ROLE_USER, 'yes'],
    ])
    // The task is over: a further message is refused, the client is told how to go on.
    await expect(c.sendMessage(message(text('again'), { taskId: asked.id }))).rejects.toBeInstanceOf(
      UnsupportedOperationError,
    )
  })

  it('input-required over streams: the stream closes at the question, the answer streams to the end', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const first = await collect(c.sendMessageStream(message(data({ mode: 'interrupt', text: 'Sure?' }))))
    expect(statesOf(first).at(-1)).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    const task = first[0]?.payload?.$case === 'task' ? first[0].payload.value : undefined
    const second = await collect(
      c.sendMessageStream(message(data({ confirmed: true }), { taskId: task!.id })),
    )
    expect(statesOf(second).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)
    const final = await c.getTask({ tenant: '', id: task!.id })
    expect(artifactData(final)).toEqual([
      { before: 'prepared', answer: { confirmed: true }, after: 'got {"confirmed":true}' },
    ])
  })

  it('contextId is the thread: tasks on one context share its state; a new contextId starts one', async () => {
    const c = await a2aClient(t.url, 'flex', member, { binding })
    const contextId = `conv-${binding === 'JSONRPC' ? 'rpc' : 'rest'}-${Date.now()}`
    const one = asTask(await c.sendMessage(message(data({ mode: 'state', text: 'a' }), { contextId })))
    const two = asTask(await c.sendMessage(message(data({ mode: 'state', text: 'b' }), { contextId })))
    expect([one.contextId, two.contextId]).toEqual([contextId, contextId])
    expect(artifactData(one)).toEqual([{ count: 1 }])
    expect(artifactData(two)).toEqual([{ count: 2 }])
    const thread = await t.api('GET', `/v1/threads/${contextId}`, undefined, member)
    expect(thread.body.values).toMatchObject({ count: 2, last: 'b' })
    const fresh = asTask(await c.sendMessage(message(data({ mode: 'state' }))))
    expect(fresh.contextId).not.toBe(contextId)
    expect(artifactData(fresh)).toEqual([{ count: 1 }])

    const list = await c.listTasks({
      tenant: '',
      contextId,
      status: 0,
      pageToken: '',
      statusTimestampAfter: undefined,
      pageSize: 1,
    })
    expect(list.tasks.map((x) => x.id)).toEqual([two.id])
    expect(list.totalSize).toBe(2)
    expect(list.nextPageToken).not.toBe('')
    expect(list.tasks[0]?.artifacts).toEqual([])
    const page2 = await c.listTasks({
      tenant: '',
      contextId,
      status: 0,
      pageToken: list.nextPageToken,
      statusTimestampAfter: undefined,
      pageSize: 1,
      includeArtifacts: true,
    })
    expect(page2.tasks.map((x) => x.id)).toEqual([one.id])
    expect(page2.nextPageToken).toBe('')
    expect(artifactData(page2.tasks[0]!)).toEqual([{ count: 1 }])
  })

  it('the same messageId sent again finds its task instead of starting another', async () => {
    const c = await a2aClient(t.url, 'typed', member, { binding })
    const messageId = crypto.randomUUID()
    const a = asTask(await c.sendMessage(message(data({ a: 1, b: 1 }), { messageId })))
    const b = asTask(await c.sendMessage(message(data({ a: 1, b: 1 }), { messageId })))
    expect(b.id).toBe(a.id)
  })
})

describe('list tasks', () => {
  it('filters by state and is scoped to the caller (members see their own, admins the tenant’s)', async () => {
    const mine = await a2aClient(t.url, 'flex', member2)
    const waiting = asTask(await mine.sendMessage(message(data({ mode: 'interrupt' }))))
    const q = (status: TaskState) => ({
      tenant: '',
      contextId: '',
      status,
      pageToken: '',
      statusTimestampAfter: undefined,
    })
    const inputRequired = await mine.listTasks(q(TaskState.TASK_STATE_INPUT_REQUIRED))
    expect(inputRequired.tasks.map((x) => x.id)).toEqual([waiting.id])
    expect((await mine.listTasks(q(TaskState.TASK_STATE_COMPLETED))).tasks).toEqual([])
    const other = await a2aClient(t.url, 'flex', member)
    const theirs = await other.listTasks(q(TaskState.TASK_STATE_INPUT_REQUIRED))
    expect(theirs.tasks.map((x) => x.id)).not.toContain(waiting.id)
    await expect(other.getTask({ tenant: '', id: waiting.id })).rejects.toBeInstanceOf(TaskNotFoundError)
    const admin = await a2aClient(t.url, 'flex', t.key)
    expect((await admin.listTasks(q(TaskState.TASK_STATE_INPUT_REQUIRED))).tasks.map((x) => x.id)).toContain(
      waiting.id,
    )
    await mine.cancelTask({ tenant: '', id: waiting.id, metadata: undefined })
  })
})

describe('A2A 0.3 (method names message/send, tasks/get, …)', () => {
  it('an SDK client speaking 0.3 sends, gets, streams, resubscribes and cancels', async () => {
    const c = await a2aClient(t.url, 'flex', member, { legacy: true })
    expect(c.protocolVersion).toBe('0.3')
    const task = asTask(await c.sendMessage(message(data({ mode: 'echo', text: 'old' }))))
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(artifactData(task)).toEqual(['old'])
    const again = await c.getTask({ tenant: '', id: task.id })
    expect(again.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    const events = await collect(c.sendMessageStream(message(data({ mode: 'steps', steps: 2 }))))
    expect(statesOf(events).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)

    const hanging = asTask(
      await c.sendMessage(message(data({ mode: 'hang' }), {}, { returnImmediately: true })),
    )
    const sub = c.resubscribeTask({ tenant: '', id: hanging.id })
    const head = await sub.next()
    expect(head.value?.payload?.$case).toBe('task')
    const cancelled = await c.cancelTask({ tenant: '', id: hanging.id, metadata: undefined })
    expect(cancelled.status?.state).toBe(TaskState.TASK_STATE_CANCELED)
    const tail = await collect(sub)
    expect(statesOf(tail).at(-1)).toBe(TaskState.TASK_STATE_CANCELED)
  })

  it('answers 0.3 JSON-RPC in the 0.3 shape (kind fields, lowercase states)', async () => {
    const r = await rpc(
      'flex',
      call('message/send', {
        message: {
          kind: 'message',
          messageId: crypto.randomUUID(),
          role: 'user',
          parts: [{ kind: 'data', data: { mode: 'echo', text: 'legacy' } }],
        },
        configuration: { blocking: true },
      }),
      { headers: { 'a2a-version': '0.3' } },
    )
    expect(r.status).toBe(200)
    expect(r.body.result).toMatchObject({
      kind: 'task',
      status: { state: 'completed' },
      artifacts: [{ artifactId: 'output', parts: [{ kind: 'text', text: 'legacy' }] }],
    })
    const got = await rpc('flex', call('tasks/get', { id: r.body.result.id }, 'g'))
    expect(got.body).toMatchObject({ id: 'g', result: { kind: 'task', id: r.body.result.id } })
    const missing = await rpc('flex', call('tasks/get', { id: crypto.randomUUID() }))
    expect(missing.body.error.code).toBe(-32001)
  })
})

describe('errors (JSON-RPC codes and HTTP+JSON statuses of the spec)', () => {
  it('malformed requests: -32700, -32600, -32601, -32602, -32005, -32009', async () => {
    expect((await rpc('flex', '{not json')).body.error.code).toBe(-32700)
    expect((await rpc('flex', '[]')).body.error.code).toBe(-32600)
    expect((await rpc('flex', { id: 1, method: 'GetTask', params: {} })).body).toMatchObject({
      id: 1,
      error: { code: -32600 },
    })
    expect((await rpc('flex', call('tasks/list', {}))).body.error.code).toBe(-32601)
    expect((await rpc('flex', call('Nope', {}))).body.error.code).toBe(-32601)
    expect((await rpc('flex', call('SendMessage', { configuration: {} }))).body.error.code).toBe(-32602)
    expect((await rpc('flex', call('GetTask', 'x'))).body.error.code).toBe(-32602)
    const badSchema = await rpc(
      'flex',
      call('SendMessage', { message: { messageId: 'm', role: 'ROLE_USER', parts: [{ text: 'hi' }] } }),
    )
    expect(badSchema.body.error.code).toBe(-32602)
    expect(badSchema.body.error.message).toMatch(/mode/)
    const textPlain = await rpc('flex', call('GetTask', { id: 'x' }), {
      headers: { 'content-type': 'text/plain' },
    })
    expect(textPlain.body.error.code).toBe(-32005)
    const version = await rpc('flex', call('GetTask', { id: 'x' }), { headers: { 'a2a-version': '2.0' } })
    expect(version.body.error.code).toBe(-32009)
  })

  it('unknown and finished tasks: -32001, -32002, -32004; an unknown agent is 404', async () => {
    expect((await rpc('flex', call('GetTask', { id: crypto.randomUUID() }))).body.error.code).toBe(-32001)
    expect((await rpc('flex', call('CancelTask', { id: 'nope' }))).body.error.code).toBe(-32001)
    expect(
      (
        await rpc(
          'flex',
          call('CreateTaskPushNotificationConfig', { taskId: 'nope', url: 'https://example.com/h' }),
        )
      ).body.error.code,
    ).toBe(-32001)
    const done = await finishedTask()
    // A task of another agent is not this endpoint's.
    expect((await rpc('typed', call('GetTask', { id: done.id }))).body.error.code).toBe(-32001)
    expect((await rpc('flex', call('CancelTask', { id: done.id }))).body.error.code).toBe(-32002)
    const sub = await rpc('flex', call('SubscribeToTask', { id: done.id }))
    expect(sub.body.error.code).toBe(-32004)
    const send = await rpc(
      'flex',
      call('SendMessage', {
        message: {
          messageId: crypto.randomUUID(),
          role: 'ROLE_USER',
          taskId: done.id,
          parts: [{ text: 'x' }],
        },
      }),
    )
    expect(send.body.error.code).toBe(-32004)
    const unknownAgent = await rpc('nope', call('GetTask', { id: 'x' }))
    expect(unknownAgent.status).toBe(404)
  })

  it('HTTP+JSON statuses: 404 TASK_NOT_FOUND, 400 for a bad body and a finished task, google.rpc.Status bodies', async () => {
    const auth = { authorization: `Bearer ${t.key}`, 'content-type': 'application/a2a+json' }
    const missing = await fetch(`${t.url}/a2a/flex/tasks/${crypto.randomUUID()}`, { headers: auth })
    expect(missing.status).toBe(404)
    const body = (await missing.json()) as any
    expect(body.error).toMatchObject({ code: 404, status: 'NOT_FOUND' })
    expect(body.error.details[0]).toMatchObject({ reason: 'TASK_NOT_FOUND', domain: 'a2a-protocol.org' })
    const bad = await fetch(`${t.url}/a2a/flex/message:send`, {
      method: 'POST',
      headers: auth,
      body: '{"message": 3}',
    })
    expect(bad.status).toBe(400)
    const done = await finishedTask()
    const cancel = await fetch(`${t.url}/a2a/flex/tasks/${done.id}:cancel`, { method: 'POST', headers: auth })
    expect(cancel.status).toBe(400)
    expect(((await cancel.json()) as any).error.details[0].reason).toBe('TASK_NOT_CANCELABLE')
    const sub = await fetch(`${t.url}/a2a/flex/tasks/${done.id}:subscribe`, { method: 'POST', headers: auth })
    expect(sub.status).toBe(400)
    expect(((await sub.json()) as any).error.details[0].reason).toBe('UNSUPPORTED_OPERATION')
  })

  it('roles: an auditor may read but not send (403)', async () => {
    const send = await rpc(
      'flex',
      call('SendMessage', {
        message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ data: { mode: 'echo' } }] },
      }),
      { key: auditor },
    )
    expect(send.status).toBe(403)
    const rest = await fetch(`${t.url}/a2a/flex/message:send`, {
      method: 'POST',
      headers: { authorization: `Bearer ${auditor}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: { messageId: 'm2', role: 'ROLE_USER', parts: [{ text: 'x' }] } }),
    })
    expect(rest.status).toBe(403)
    const done = await finishedTask()
    expect((await rpc('flex', call('GetTask', { id: done.id }), { key: auditor })).body.result.id).toBe(
      done.id,
    )
  })
})

describe('a policy denial', () => {
  it('rejects the task: a tool call the policy denies ends it as rejected, with the reason', async () => {
    const upstream = await startUpstream({ era: '2025', name: 'up' })
    try {
      await t.apply(
        httpConnector('up', upstream.url) +
          `---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: a2a-test-deny }
spec:
  rules:
    - match: { tool: up__echo }
      decision: deny
      reason: echo is off limits
`,
      )
      const c = await a2aClient(t.url, 'flex', member)
      const task = asTask(
        await c.sendMessage(message(data({ mode: 'tool', tool: 'up__echo', args: { text: 'x' } }))),
      )
      expect(task.status?.state).toBe(TaskState.TASK_STATE_REJECTED)
      expect(task.status?.message?.parts[0]?.content?.value).toMatch(/echo/)
      expect((await t.api('GET', `/v1/runs/${task.id}`, undefined, member)).body.error.code).toBe('forbidden')
    } finally {
      await t.api('DELETE', '/v1/admin/policies/a2a-test-deny')
      await upstream.close()
    }
  })
})

describe('tenant isolation', () => {
  it('tenant B can neither get, cancel, list, subscribe to, answer nor configure pushes of tenant A’s tasks', async () => {
    const a = await a2aClient(t.url, 'flex', t.key)
    const waiting = asTask(await a.sendMessage(message(data({ mode: 'interrupt' }))))
    const b = await a2aClient(t.url, 'flex', globex)
    const id = waiting.id
    await expect(b.getTask({ tenant: '', id })).rejects.toBeInstanceOf(TaskNotFoundError)
    await expect(b.cancelTask({ tenant: '', id, metadata: undefined })).rejects.toBeInstanceOf(
      TaskNotFoundError,
    )
    await expect(collect(b.resubscribeTask({ tenant: '', id }))).rejects.toBeInstanceOf(TaskNotFoundError)
    await expect(b.sendMessage(message(text('hijack'), { taskId: id }))).rejects.toBeInstanceOf(
      TaskNotFoundError,
    )
    await expect(
      b.createTaskPushNotificationConfig({
        tenant: '',
        id: 'x',
        taskId: id,
        url: 'https://example.com/hook',
        token: '',
        authentication: undefined,
      }),
    ).rejects.toBeInstanceOf(TaskNotFoundError)
    await expect(
      b.listTaskPushNotificationConfig({ tenant: '', taskId: id, pageSize: 0, pageToken: '' }),
    ).rejects.toBeInstanceOf(TaskNotFoundError)
    const list = await b.listTasks({
      tenant: '',
      contextId: '',
      status: 0,
      pageToken: '',
      statusTimestampAfter: undefined,
    })
    expect(list.tasks.map((x) => x.id)).not.toContain(id)
    // Naming A's tenant in the request does not help.
    const named = await rpc('flex', call('GetTask', { id, tenant: 'default' }), { key: globex })
    expect(named.body.error.code).not.toBe(undefined)
    expect(JSON.stringify(named.body)).not.toContain('interrupt')
    // A is untouched and still waiting.
    expect((await a.getTask({ tenant: '', id })).status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
    await a.cancelTask({ tenant: '', id, metadata: undefined })
  })

  it('audit: tasks started over A2A are runs of the caller, audited as such', async () => {
    const c = await a2aClient(t.url, 'typed', member)
    const task = asTask(await c.sendMessage(message(data({ a: 4, b: 4 }))))
    const rows = await eventually(async () => {
      const r = await t.api('GET', '/v1/audit?action=run.create')
      const hit = r.body.items.filter((i: any) => i.target === `typed/${task.id}`)
      return hit.length ? hit : undefined
    })
    expect(rows[0].principal).not.toBe('bootstrap')
  })
})
