import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startA2aServer } from '../fixtures/a2a-server.mjs'
import { startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'

let t: TestGateway
let remote: {
  url: string
  requests: { headers: Record<string, string>; op: string }[]
  close(): Promise<void>
}

beforeAll(async () => {
  process.env.TEST_A2A_TOKEN = 'a2a-remote-secret-token'
  remote = await startA2aServer({
    streaming: true,
    requireHeaders: { 'x-remote-key': 'a2a-remote-secret-token' },
  })
  t = await startTestGateway()
  await t.apply(`apiVersion: gatehouse/v1
kind: Agent
metadata: { name: remote }
spec:
  type: a2a
  url: "${remote.url}"
  description: A remote A2A agent
  headers: { x-remote-key: { env: TEST_A2A_TOKEN } }
`)
})

afterAll(async () => {
  await t?.close()
  await remote?.close()
})

describe('a2a agents (a remote A2A agent through the run engine)', () => {
  it('runs a remote agent and returns its artifact', async () => {
    const r = await t.api('POST', '/v1/runs', { agent: 'remote', input: { text: 'stream 2' } })
    expect(r.status).toBe(201)
    const done = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(done).toMatchObject({ status: 'succeeded', output: { text: 'Hello, world' } })
    const events = (await t.api('GET', `/v1/runs/${r.body.id}/events`)).body as string
    expect(events).toContain('step 2/2')
    expect(remote.requests.some((q) => q.headers['x-remote-key'] === 'a2a-remote-secret-token')).toBe(true)
    expect(JSON.stringify(done)).not.toContain('a2a-remote-secret-token')
  })

  it('an input-required remote task interrupts the run; resume answers it', async () => {
    const r = await t.api('POST', '/v1/runs', { agent: 'remote', input: { text: 'ask' } })
    const paused = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(paused.status).toBe('interrupted')
    expect(paused.interrupt.question).toBe('What is your name?')
    await t.api('POST', `/v1/runs/${r.body.id}/resume`, { value: 'Ada' })
    const done = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
    expect(done).toMatchObject({ status: 'succeeded', output: { text: 'Hello, Ada!' } })
  })

  it('is an MCP tool too', async () => {
    const c = await t.client()
    const res = await c.callTool({ name: 'agents__remote', arguments: { text: 'echo me' } })
    expect(res.isError).toBeFalsy()
    expect(textOf(res)).toContain('echo me')
  })
})
