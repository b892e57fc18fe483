import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifySlackSignature } from '../../src/policy/slack.js'
import { httpConnector, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'
import { startFakeSlack, type FakeSlack } from './fake-slack.js'
import { startPolicyUpstream, type PolicyUpstream } from './upstream.js'

const TOKEN = 'xoxb-test-token-0000'
const SECRET = 'slack-signing-secret-for-tests'

let slack: FakeSlack
let up: PolicyUpstream
let t: TestGateway

/** Form-encodes an interaction payload and signs it like Slack does (or with another secret). */
function signed(payload: unknown, { secret = SECRET, ts = Math.floor(Date.now() / 1000) } = {}) {
  const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`
  const sig = `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`
  return {
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': sig,
    },
  }
}

async function interact(payload: unknown, opts?: { secret?: string; ts?: number }) {
  const { body, headers } = signed(payload, opts)
  const res = await fetch(`${t.url}/hooks/slack/interactions`, { method: 'POST', headers, body })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

async function pausedRun(args: Record<string, unknown>) {
  const r = await t.api('POST', '/v1/runs', {
    agent: 'flex',
    input: { mode: 'tool', tool: 'ops__deploy', args },
  })
  expect(r.status).toBe(201)
  const paused = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`)).body
  expect(paused.status).toBe('interrupted')
  return { runId: r.body.id as string, approvalId: paused.interrupt.approval_id as string }
}

async function postedFor(approvalId: string) {
  let post: FakeSlack['calls'][number] | undefined
  await expect
    .poll(
      () =>
        (post = slack.calls.find((c) => c.method === 'chat.postMessage' && c.args.text.includes(approvalId))),
    )
    .toBeTruthy()
  return post!
}

beforeAll(async () => {
  slack = await startFakeSlack(TOKEN)
  up = await startPolicyUpstream()
  process.env.TEST_SLACK_TOKEN = TOKEN
  process.env.TEST_SLACK_SECRET = SECRET
  t = await startTestGateway({
    config: {
      approvalSweepMs: 100,
      slack: {
        apiUrl: slack.apiUrl,
        tokenEnv: 'TEST_SLACK_TOKEN',
        signingSecretEnv: 'TEST_SLACK_SECRET',
        channels: { default: 'C0APPROVALS' },
        users: {
          U0APPROVER: { principal: 'user:alice', tenants: ['default'] },
          U0VIEWER: { principal: 'user:bob', roles: ['member'], tenants: ['default'] },
        },
      },
    },
  })
  await t.apply(
    agentManifests() +
      '---\n' +
      httpConnector('ops', up.url) +
      `---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: deploys }
spec:
  rules:
    - { match: { tool: ops__deploy }, decision: approve, reason: production change }
`,
  )
})

afterAll(async () => {
  await t?.close()
  await up?.close()
  await slack?.close()
})

describe('Slack approvals', () => {
  it('verifies signatures over the raw body with a replay window', () => {
    const raw = Buffer.from('payload=%7B%7D')
    const ts = '1700000000'
    const sig = `v0=${createHmac('sha256', 's').update(`v0:${ts}:`).update(raw).digest('hex')}`
    expect(() => verifySlackSignature('s', raw, ts, sig, 300, 1700000000_000)).not.toThrow()
    expect(() => verifySlackSignature('s', raw, ts, sig, 300, 1700000400_000)).toThrow(
      /outside the allowed window/,
    )
    expect(() => verifySlackSignature('other', raw, ts, sig, 300, 1700000000_000)).toThrow(/does not match/)
    expect(() =>
      verifySlackSignature('s', Buffer.from('payload=%7B%7D '), ts, sig, 300, 1700000000_000),
    ).toThrow(/does not match/)
    expect(() => verifySlackSignature('s', raw, undefined, sig, 300)).toThrow(/missing/)
  })

  it('posts the request, takes an approve click, runs the tool and updates the message', async () => {
    const before = up.calls.length
    const { runId, approvalId } = await pausedRun({ service: 'api', env: 'prod' })
    const post = await postedFor(approvalId)
    expect(post.token).toBe(TOKEN)
    expect(post.args.channel).toBe('C0APPROVALS')
    const actions = post.args.blocks.find((b: any) => b.type === 'actions')
    expect(actions.elements.map((e: any) => e.action_id)).toEqual(['approve', 'reject', 'edit'])
    const value = actions.elements[0].value as string
    expect(value).toBe(`default:${approvalId}`)
    const click = {
      type: 'block_actions',
      user: { id: 'U0APPROVER' },
      trigger_id: 'T1',
      actions: [{ action_id: 'approve', value }],
    }

    // Wrongly signed, stale, or from a Slack user who is no approver: refused, nothing decided.
    expect((await interact(click, { secret: 'wrong-secret' })).status).toBe(401)
    expect((await interact(click, { ts: Math.floor(Date.now() / 1000) - 3600 })).status).toBe(401)
    const unsigned = await fetch(`${t.url}/hooks/slack/interactions`, {
      method: 'POST',
      body: 'payload=%7B%7D',
    })
    expect(unsigned.status).toBe(401)
    expect((await interact({ ...click, user: { id: 'U0VIEWER' } })).status).toBe(404) // a member does not see it
    expect((await interact({ ...click, user: { id: 'U0STRANGER' } })).status).toBe(403)
    expect((await t.api('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('pending')

    const ok = await interact(click)
    expect(ok.status).toBe(200)
    // A double click is harmless.
    expect((await interact(click)).status).toBe(200)
    const a = (await t.api('GET', `/v1/approvals/${approvalId}`)).body
    expect(a).toMatchObject({ status: 'approved', channel: 'slack', decider: 'user:alice' })
    const done = (await t.api('GET', `/v1/runs/${runId}/wait?timeout=20`)).body
    expect(textOf(done.output)).toBe('deployed api to prod')
    expect(up.calls.slice(before).filter((c) => c.tool === 'deploy')).toHaveLength(1)
    await expect
      .poll(() => slack.calls.find((c) => c.method === 'chat.update' && c.args.text.includes(approvalId)))
      .toBeTruthy()
    const update = slack.calls.find((c) => c.method === 'chat.update' && c.args.text.includes(approvalId))!
    expect(update.args).toMatchObject({ channel: 'C0APPROVALS', ts: post.args.ts ?? update.args.ts })
    expect(update.args.text).toMatch(/approved by user:alice/)
  })

  it('edit: opens a modal with the arguments; the submitted arguments are validated, then used', async () => {
    const { runId, approvalId } = await pausedRun({ service: 'web', env: 'prod' })
    const value = `default:${approvalId}`
    await postedFor(approvalId)
    const open = await interact({
      type: 'block_actions',
      user: { id: 'U0APPROVER' },
      trigger_id: 'TRIGGER-9',
      actions: [{ action_id: 'edit', value }],
    })
    expect(open.status).toBe(200)
    const modal = slack.calls.findLast((c) => c.method === 'views.open')!
    expect(modal.args.trigger_id).toBe('TRIGGER-9')
    expect(modal.args.view.private_metadata).toBe(value)
    expect(JSON.parse(modal.args.view.blocks[0].element.initial_value)).toEqual({
      service: 'web',
      env: 'prod',
    })
    const submit = (args: string) => ({
      type: 'view_submission',
      user: { id: 'U0APPROVER' },
      view: {
        callback_id: modal.args.view.callback_id,
        private_metadata: value,
        state: { values: { args: { args: { value: args } }, reason: { reason: { value: 'canary first' } } } },
      },
    })
    const bad = await interact(submit('{"service": "web", "env": "moon"}'))
    expect(bad.status).toBe(200)
    expect(bad.body).toMatchObject({ response_action: 'errors' })
    expect(bad.body.errors.args).toMatch(/do not match the schema/)
    expect((await interact(submit('not json'))).body).toEqual({
      response_action: 'errors',
      errors: { args: 'not valid JSON' },
    })
    const good = await interact(submit('{"service": "web", "env": "staging"}'))
    expect(good.status).toBe(200)
    const done = (await t.api('GET', `/v1/runs/${runId}/wait?timeout=20`)).body
    expect(textOf(done.output)).toBe('deployed web to staging')
    expect((await t.api('GET', `/v1/approvals/${approvalId}`)).body).toMatchObject({
      decision: 'edit',
      reason: 'canary first',
      channel: 'slack',
    })
  })

  it('reject: the agent gets the tool error, and the message says who rejected', async () => {
    const { runId, approvalId } = await pausedRun({ service: 'db', env: 'prod' })
    await postedFor(approvalId)
    const r = await interact({
      type: 'block_actions',
      user: { id: 'U0APPROVER' },
      actions: [{ action_id: 'reject', value: `default:${approvalId}` }],
    })
    expect(r.status).toBe(200)
    const done = (await t.api('GET', `/v1/runs/${runId}/wait?timeout=20`)).body
    expect(done.output.isError).toBe(true)
    expect(textOf(done.output)).toMatch(/rejected by user:alice/)
    await expect
      .poll(
        () =>
          slack.calls.find((c) => c.method === 'chat.update' && c.args.text.includes(approvalId))?.args.text,
      )
      .toMatch(/rejected by user:alice/)
  })
})
