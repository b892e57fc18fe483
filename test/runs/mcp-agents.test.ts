import { specTypeSchemas } from '@modelcontextprotocol/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { httpConnector, startTestGateway, textOf, type Era, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from './manifests.js'

let t: TestGateway

beforeAll(async () => {
  t = await startTestGateway()
  await t.apply(
    agentManifests() +
      `---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: adder }
spec: { agents: [typed] }
`,
  )
})

afterAll(async () => {
  await t?.close()
})

describe.each(['legacy', 'modern'] as Era[])('agents as MCP tools (%s client)', (era) => {
  it('lists every agent as agents__{name} with its input schema; a virtual server lists only its own', async () => {
    const c = await t.client({ era })
    const tools = (await c.listTools()).tools
    const typed = tools.find((x) => x.name === 'agents__typed')!
    expect(typed.description).toBe('Adds two numbers')
    expect(typed.inputSchema.properties).toHaveProperty('a')
    expect(tools.map((x) => x.name)).toContain('agents__flex')
    const s = await t.client({ era, path: '/mcp/adder' })
    expect((await s.listTools()).tools.map((x) => x.name)).toEqual(['agents__typed'])
  })

  it('runs the agent and returns its output as text and structured content', async () => {
    const c = await t.client({ era })
    const r = await c.callTool({ name: 'agents__typed', arguments: { a: 2, b: 40 } })
    expect(r.isError).toBeFalsy()
    expect(r.structuredContent).toEqual({ sum: 42 })
    const runId = (r._meta as any)['io.gatehouse/run'].id
    expect((await t.api('GET', `/v1/runs/${runId}`)).body.status).toBe('succeeded')
  })

  it('streams progress notifications while the run goes', async () => {
    const c = await t.client({ era })
    const seen: string[] = []
    const r = await c.callTool(
      { name: 'agents__flex', arguments: { mode: 'steps', steps: 3, sleepMs: 20 } },
      { onprogress: (p) => seen.push(String(p.message)) },
    )
    expect(r.structuredContent).toEqual({ done: [0, 10, 20] })
    expect(seen.filter((m) => m === 'progress')).toHaveLength(3)
    expect(seen).toContain('run running')
  })

  it('turns an interrupt into a form elicitation and resumes the run with the answer', async () => {
    const c = await t.client({ era, capabilities: { elicitation: { form: {} } } })
    const asked: string[] = []
    c.setRequestHandler('elicitation/create', async (req) => {
      asked.push((req.params as { message: string }).message)
      return { action: 'accept', content: { value: 'ship it' } }
    })
    const r = await c.callTool({
      name: 'agents__flex',
      arguments: { mode: 'interrupt', text: 'Deploy now?' },
    })
    expect(asked).toEqual(['Deploy now?'])
    expect(r.structuredContent).toMatchObject({ answer: 'ship it', after: 'got "ship it"' })
  })

  it('tells a client that cannot answer how to resume, and the run waits durably', async () => {
    const c = await t.client({ era })
    const r = await c.callTool({ name: 'agents__flex', arguments: { mode: 'interrupt', text: 'Proceed?' } })
    expect(r.isError).toBeFalsy()
    const s = r.structuredContent as { run_id: string; status: string; interrupt: unknown }
    expect(s).toMatchObject({ status: 'interrupted', interrupt: { question: 'Proceed?' } })
    expect(textOf(r)).toContain(`POST /v1/runs/${s.run_id}/resume`)
    expect((await t.api('POST', `/v1/runs/${s.run_id}/resume`, { value: 'ok' })).status).toBe(202)
    const done = (await t.api('GET', `/v1/runs/${s.run_id}/wait?timeout=10`)).body
    expect(done).toMatchObject({ status: 'succeeded', output: { answer: 'ok' } })
  })

  it('reports bad input and agent failures as tool errors', async () => {
    const c = await t.client({ era })
    const bad = await c.callTool({ name: 'agents__typed', arguments: { a: 'x' } })
    expect(bad.isError).toBe(true)
    expect(textOf(bad)).toMatch(/input does not match agent typed/)
    const failed = await c.callTool({ name: 'agents__flex', arguments: { mode: 'fail', text: 'nope' } })
    expect(failed.isError).toBe(true)
    expect(textOf(failed)).toMatch(/failed: nope/)
  })
})

describe('agents as MCP tools: cancellation', () => {
  it('a cancelled tool call cancels its run', async () => {
    const c = await t.client({ era: 'legacy' })
    const ac = new AbortController()
    const call = c.callTool({ name: 'agents__flex', arguments: { mode: 'hang' } }, { signal: ac.signal })
    let runId: string | undefined
    await expect
      .poll(async () => {
        const list = (await t.api('GET', '/v1/runs?status=running&agent=flex')).body.items
        runId = list.find((r: any) => r.input.mode === 'hang')?.id
        return runId
      })
      .toBeTruthy()
    ac.abort()
    await expect(call).rejects.toThrow()
    await expect.poll(async () => (await t.api('GET', `/v1/runs/${runId}`)).body.status).toBe('cancelled')
  })
})

describe('agents as MCP tasks (2025-11-25 tasks)', () => {
  const S = specTypeSchemas as unknown as Record<string, never>

  it('a task-augmented call answers with a task; tasks/get, tasks/result and tasks/list follow the run', async () => {
    const c = await t.client({ era: 'legacy' })
    expect((c.getServerCapabilities() as any).tasks.requests.tools.call).toEqual({})
    const tool = (await c.listTools()).tools.find((x) => x.name === 'agents__flex') as any
    expect(tool.execution).toEqual({ taskSupport: 'optional' })
    const created: any = await c.request(
      {
        method: 'tools/call',
        params: {
          name: 'agents__flex',
          arguments: { mode: 'steps', steps: 3, sleepMs: 50 },
          task: { ttl: 60000 },
        },
      } as never,
      S.CreateTaskResult,
    )
    const taskId = created.task.taskId
    expect(created.task.status).toBe('working')
    expect((await t.api('GET', `/v1/runs/${taskId}`)).body.agent).toBe('flex')
    const got: any = await c.request({ method: 'tasks/get', params: { taskId } } as never, S.GetTaskResult)
    expect(got.taskId).toBe(taskId)
    const result: any = await c.request(
      { method: 'tasks/result', params: { taskId } } as never,
      S.CallToolResult,
    )
    expect(result.structuredContent).toEqual({ done: [0, 10, 20] })
    expect(result._meta['io.modelcontextprotocol/related-task']).toEqual({ taskId })
    const after: any = await c.request({ method: 'tasks/get', params: { taskId } } as never, S.GetTaskResult)
    expect(after.status).toBe('completed')
    const list: any = await c.request({ method: 'tasks/list', params: {} } as never, S.ListTasksResult)
    expect(list.tasks.map((x: any) => x.taskId)).toContain(taskId)
  })

  it('tasks/result asks through elicitation for an interrupt; tasks/cancel cancels; unknown ids are -32602', async () => {
    const c = await t.client({ era: 'legacy', capabilities: { elicitation: { form: {} } } })
    c.setRequestHandler('elicitation/create', async (req) => {
      expect((req.params as any)._meta['io.modelcontextprotocol/related-task'].taskId).toBeTruthy()
      return { action: 'accept', content: { value: 'go' } }
    })
    const asked: any = await c.request(
      {
        method: 'tools/call',
        params: { name: 'agents__flex', arguments: { mode: 'interrupt' }, task: {} },
      } as never,
      S.CreateTaskResult,
    )
    await expect
      .poll(
        async () =>
          (
            (await c.request(
              { method: 'tasks/get', params: { taskId: asked.task.taskId } } as never,
              S.GetTaskResult,
            )) as any
          ).status,
      )
      .toBe('input_required')
    const r: any = await c.request(
      { method: 'tasks/result', params: { taskId: asked.task.taskId } } as never,
      S.CallToolResult,
    )
    expect(r.structuredContent).toMatchObject({ answer: 'go' })

    const hang: any = await c.request(
      {
        method: 'tools/call',
        params: { name: 'agents__flex', arguments: { mode: 'hang' }, task: {} },
      } as never,
      S.CreateTaskResult,
    )
    const cancelled: any = await c.request(
      { method: 'tasks/cancel', params: { taskId: hang.task.taskId } } as never,
      S.CancelTaskResult,
    )
    expect(cancelled.status).toBe('cancelled')
    await expect(
      c.request(
        { method: 'tasks/cancel', params: { taskId: hang.task.taskId } } as never,
        S.CancelTaskResult,
      ),
    ).rejects.toThrow(/already cancelled/)
    await expect(
      c.request({ method: 'tasks/get', params: { taskId: 'nope' } } as never, S.GetTaskResult),
    ).rejects.toThrow(/unknown task nope/)
  })

  it('refuses a task-augmented call of an upstream tool', async () => {
    const up = await startUpstream({ era: '2025', name: 'up' })
    try {
      await t.apply(httpConnector('up', up.url))
      const c = await t.client({ era: 'legacy' })
      await expect(
        c.request(
          { method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'x' }, task: {} } } as never,
          S.CreateTaskResult,
        ),
      ).rejects.toThrow(/up__echo does not support task-augmented calls/)
      expect(textOf(await c.callTool({ name: 'up__echo', arguments: { text: 'plain' } }))).toBe('plain')
    } finally {
      await t.api('DELETE', '/v1/admin/connectors/up')
      await up.close()
    }
  })
})
