import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RequestMalformedError } from '@a2a-js/sdk/errors'
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'
import { a2aClient, asTask, data, eventuallyOk, message, TaskState, text } from './helpers.js'

interface Received {
  headers: http.IncomingHttpHeaders
  body: any
}

/** A webhook receiver on loopback that records every POST; the first `failFirst` answer 503. */
async function receiver(failFirst = 0) {
  const got: Received[] = []
  let failures = failFirst
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      got.push({ headers: req.headers, body: JSON.parse(raw) })
      if (failures > 0) {
        failures--
        res.writeHead(503).end()
        return
      }
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    /** Bodies of the deliveries that were accepted, in arrival order, without retries' duplicates. */
    accepted(): any[] {
      const seen = new Set<string>()
      return got.filter((g) => {
        const id = String(g.headers['gatehouse-webhook-id'])
        if (seen.has(id)) return false
        seen.add(id)
        return true
      })
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

/** The A2A state a delivery announces (1.0 StreamResponse bodies). */
const stateOf = (body: any): string | undefined =>
  body.statusUpdate?.status?.state ?? body.task?.status?.state

let t: TestGateway
beforeAll(async () => {
  // Test configuration allows private-network targets: the receiver is on loopback.
  t = await startTestGateway({ manifests: agentManifests(), config: { allowPrivateNetwork: true } })
})
afterAll(async () => t?.close())

describe('push notifications', () => {
  it('a config on SendMessage delivers the task’s updates with its token and authentication', async () => {
    const hook = await receiver()
    try {
      const c = await a2aClient(t.url, 'flex', t.key)
      const task = asTask(
        await c.sendMessage(
          message(
            data({ mode: 'steps', steps: 2, sleepMs: 100 }),
            {},
            {
              returnImmediately: true,
              taskPushNotificationConfig: {
                url: hook.url,
                token: 'tok-123',
                authentication: { scheme: 'Bearer', credentials: 'push-secret' },
              },
            },
          ),
        ),
      )
      const bodies = await eventuallyOk(() => {
        const b = hook.accepted().map((g) => g.body)
        return b.some((x) => stateOf(x) === 'TASK_STATE_COMPLETED') ? b : undefined
      })
      for (const g of hook.got) {
        expect(g.headers['x-a2a-notification-token']).toBe('tok-123')
        expect(g.headers.authorization).toBe('Bearer push-secret')
        expect(g.headers['content-type']).toBe('application/a2a+json')
      }
      expect(bodies.every((b) => (b.statusUpdate ?? b.artifactUpdate).taskId === task.id)).toBe(true)
      const output = bodies.find((b) => b.artifactUpdate)
      expect(output.artifactUpdate.artifact).toMatchObject({
        artifactId: 'output',
        parts: [{ data: { done: [0, 10] } }],
      })
      expect(bodies.map(stateOf).filter(Boolean).at(-1)).toBe('TASK_STATE_COMPLETED')
      // Progress events are for streams only: webhooks get state changes and artifacts.
      expect(bodies.some((b) => b.statusUpdate?.metadata?.['io.gatehouse/event'])).toBe(false)
      // Credentials are never shown back; the token is.
      const listed = await c.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 0,
        pageToken: '',
      })
      expect(listed.configs).toHaveLength(1)
      expect(listed.configs[0]).toMatchObject({ url: hook.url, token: 'tok-123' })
      expect(listed.configs[0]?.authentication?.credentials).toBe('')
      expect(JSON.stringify(await t.api('GET', '/v1/audit'))).not.toContain('push-secret')
    } finally {
      await hook.close()
    }
  })

  it('configs are created, read, listed and deleted per task; a deleted config gets nothing more', async () => {
    const hook = await receiver()
    const other = await receiver()
    try {
      const c = await a2aClient(t.url, 'flex', t.key, { binding: 'HTTP+JSON' })
      const task = asTask(await c.sendMessage(message(data({ mode: 'interrupt', text: 'Go?' }))))
      expect(task.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED)
      const created = await c.createTaskPushNotificationConfig({
        tenant: '',
        id: 'first',
        taskId: task.id,
        url: hook.url,
        token: 'tok-a',
        authentication: undefined,
      })
      expect(created).toMatchObject({ id: 'first', taskId: task.id, url: hook.url })
      await c.createTaskPushNotificationConfig({
        tenant: '',
        id: 'second',
        taskId: task.id,
        url: other.url,
        token: '',
        authentication: undefined,
      })
      const got = await c.getTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'first' })
      expect(got.token).toBe('tok-a')
      await c.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'second' })
      await c.deleteTaskPushNotificationConfig({ tenant: '', taskId: task.id, id: 'second' })
      const list = await c.listTaskPushNotificationConfig({
        tenant: '',
        taskId: task.id,
        pageSize: 0,
        pageToken: '',
      })
      expect(list.configs.map((x) => x.id)).toEqual(['first'])

      await c.sendMessage(message(text('go'), { taskId: task.id }))
      const bodies = await eventuallyOk(() => {
        const b = hook.accepted().map((g) => g.body)
        return b.some((x) => stateOf(x) === 'TASK_STATE_COMPLETED') ? b : undefined
      })
      // Only what happened after the config existed: the answer made it work, then it completed.
      expect(bodies.map(stateOf).filter(Boolean)).toEqual(['TASK_STATE_WORKING', 'TASK_STATE_COMPLETED'])
      expect(hook.got.every((g) => g.headers['x-a2a-notification-token'] === 'tok-a')).toBe(true)
      await new Promise((r) => setTimeout(r, 400))
      expect(other.got).toEqual([])
    } finally {
      await hook.close()
      await other.close()
    }
  })

  it('a failed delivery is retried with backoff from the durable outbox', async () => {
    const hook = await receiver(1)
    try {
      const c = await a2aClient(t.url, 'flex', t.key)
      const task = asTask(await c.sendMessage(message(data({ mode: 'interrupt' }))))
      await c.createTaskPushNotificationConfig({
        tenant: '',
        id: 'retry',
        taskId: task.id,
        url: hook.url,
        token: 'tok-r',
        authentication: undefined,
      })
      await c.sendMessage(message(text('go'), { taskId: task.id }))
      // The first delivery got 503 and came again (same id) after a backoff; everything got through.
      const retried = await eventuallyOk(() => {
        const firstId = hook.got[0]?.headers['gatehouse-webhook-id']
        const again = hook.got.filter((g) => g.headers['gatehouse-webhook-id'] === firstId)
        const completed = hook.accepted().some((g) => stateOf(g.body) === 'TASK_STATE_COMPLETED')
        return again.length === 2 && completed ? again : undefined
      }, 15_000)
      expect(retried[0]!.body).toEqual(retried[1]!.body)
      expect(
        hook
          .accepted()
          .map((g) => stateOf(g.body))
          .filter(Boolean),
      ).toEqual(expect.arrayContaining(['TASK_STATE_WORKING', 'TASK_STATE_COMPLETED']))
    } finally {
      await hook.close()
    }
  })

  it('a config created over A2A 0.3 delivers 0.3 bodies (the task)', async () => {
    const hook = await receiver()
    try {
      const c = await a2aClient(t.url, 'flex', t.key, { legacy: true })
      const task = asTask(await c.sendMessage(message(data({ mode: 'interrupt' }))))
      await c.createTaskPushNotificationConfig({
        tenant: '',
        id: 'legacy',
        taskId: task.id,
        url: hook.url,
        token: 'tok-0.3',
        authentication: undefined,
      })
      await c.sendMessage(message(text('ok'), { taskId: task.id }))
      const last = await eventually(() =>
        hook.got.map((g) => g.body).find((b) => b.kind === 'task' && b.status?.state === 'completed'),
      )
      expect(last.id).toBe(task.id)
      expect(last.artifacts[0].parts[0]).toMatchObject({ kind: 'data', data: { answer: 'ok' } })
      expect(hook.got[0]!.headers['x-a2a-notification-token']).toBe('tok-0.3')
    } finally {
      await hook.close()
    }
  })
})

describe('push notifications: the SSRF guard', () => {
  let strict: TestGateway
  beforeAll(async () => {
    strict = await startTestGateway({ manifests: agentManifests(), config: { allowPrivateNetwork: false } })
  })
  afterAll(async () => strict?.close())

  it('refuses loopback and private targets unless the configuration allows them', async () => {
    const c = await a2aClient(strict.url, 'flex', strict.key)
    const task = asTask(await c.sendMessage(message(data({ mode: 'interrupt' }))))
    for (const url of ['http://127.0.0.1:9/hook', 'http://localhost:9/hook', 'http://10.0.0.7/hook']) {
      const err = await c
        .createTaskPushNotificationConfig({
          tenant: '',
          id: 'x',
          taskId: task.id,
          url,
          token: '',
          authentication: undefined,
        })
        .catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RequestMalformedError)
      expect((err as Error).message).toMatch(/refused/)
    }
    // Refused up front on SendMessage too: no task is started.
    const before = (await strict.api('GET', '/v1/runs')).body.items.length
    await expect(
      c.sendMessage(
        message(data({ mode: 'echo' }), {}, { taskPushNotificationConfig: { url: 'http://127.0.0.1:9/x' } }),
      ),
    ).rejects.toBeInstanceOf(RequestMalformedError)
    expect((await strict.api('GET', '/v1/runs')).body.items.length).toBe(before)
    await c.cancelTask({ tenant: '', id: task.id, metadata: undefined })
  })
})
