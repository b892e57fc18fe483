import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, httpConnector, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'
import { startPolicyUpstream, type PolicyUpstream } from './upstream.js'

const POLICY = `
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: deploys-need-approval }
spec:
  rules:
    - match: { connector: github, tool: deploy }
      decision: approve
      reason: deploys need a second pair of eyes
      timeout: 1h
    - match: { tool: github__delete_repo }
      decision: deny
      reason: repositories are deleted by hand
    - match: { tool: github__get_issue }
      decision: approve
      timeout: 1s
`

let up: PolicyUpstream
let t: TestGateway
let dataDir: string
let approver: string
let member: string
const cfg = () => ({ dataDir, approvalSweepMs: 100, runPollMs: 50 })

const deploys = () => up.calls.filter((c) => c.tool === 'deploy')

async function startRun(input: Record<string, unknown>, key = ADMIN_KEY) {
  const r = await t.api('POST', '/v1/runs', { agent: 'flex', input }, key)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body.id as string
}

async function waitRun(id: string) {
  const r = await t.api('GET', `/v1/runs/${id}/wait?timeout=20`)
  expect(r.status).toBe(200)
  return r.body as Record<string, any>
}

beforeAll(async () => {
  up = await startPolicyUpstream()
  dataDir = mkdtempSync(join(tmpdir(), 'gh-approvals-'))
  t = await startTestGateway({ config: cfg() })
  await t.apply(agentManifests() + '---\n' + httpConnector('github', up.url) + '---\n' + POLICY)
  approver = (await t.api('POST', '/v1/admin/keys', { role: 'approver', name: 'approver' })).body.key
  member = (await t.api('POST', '/v1/admin/keys', { role: 'member', name: 'member' })).body.key
})

afterAll(async () => {
  await t?.close()
  await up?.close()
  rmSync(dataDir, { recursive: true, force: true })
})

describe('approvals in runs', () => {
  it('pauses the run durably; approved after a gateway restart, the tool executes exactly once', async () => {
    const before = deploys().length
    const id = await startRun({ mode: 'tool', tool: 'github__deploy', args: { service: 'api', env: 'prod' } })
    const paused = await waitRun(id)
    expect(paused.status).toBe('interrupted')
    expect(paused.interrupt).toMatchObject({ type: 'approval', tool: 'github__deploy' })
    const approvalId = paused.interrupt.approval_id as string
    const pending = await t.api('GET', '/v1/approvals?status=pending', undefined, approver)
    const row = pending.body.items.find((a: any) => a.id === approvalId)
    expect(row).toMatchObject({
      status: 'pending',
      tool: 'github__deploy',
      arguments: { service: 'api', env: 'prod' },
      run_id: id,
      rule: 'deploys-need-approval/0',
      rule_reason: 'deploys need a second pair of eyes',
    })
    expect(row.arguments_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(deploys().length).toBe(before)

    // Restart: the pause and the ledger are in the database, nothing in memory.
    await t.gw.close()
    t = await startTestGateway({ config: cfg() })

    // A member does not even see another principal's approval.
    const byMember = await t.api(
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      { decision: 'approve' },
      member,
    )
    expect(byMember.status).toBe(404)
    const ok = await t.api('POST', `/v1/approvals/${approvalId}/decision`, { decision: 'approve' }, approver)
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect(ok.body).toMatchObject({ status: 'approved', decision: 'approve', channel: 'api' })
    expect(ok.body.decider).toMatch(/^service:key_/)
    // A double click is harmless; the opposite decision afterwards is a conflict.
    const again = await t.api(
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      { decision: 'approve' },
      approver,
    )
    expect(again.status).toBe(200)
    const flip = await t.api('POST', `/v1/approvals/${approvalId}/decision`, { decision: 'reject' }, approver)
    expect(flip.status).toBe(409)
    expect(flip.body.error.message).toMatch(/already approved/)

    const done = await waitRun(id)
    expect(done.status, JSON.stringify(done)).toBe('succeeded')
    expect(textOf(done.output)).toBe('deployed api to prod')
    const mine = deploys().slice(before)
    expect(mine).toHaveLength(1)
    expect(mine[0]!.meta?.['io.gatehouse/idempotency-key']).toBe(approvalId)
  })

  it('edit: the tool runs with the approver’s arguments, checked against its schema first', async () => {
    const before = deploys().length
    const id = await startRun({ mode: 'tool', tool: 'github__deploy', args: { service: 'web', env: 'prod' } })
    const approvalId = (await waitRun(id)).interrupt.approval_id as string
    const bad = await t.api(
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      { decision: 'edit', args: { service: 'web', env: 'qa' } },
      approver,
    )
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/edited args do not match the schema of github__deploy: \/env/)
    const edited = await t.api(
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      { decision: 'edit', args: { service: 'web', env: 'staging' }, reason: 'staging first' },
      approver,
    )
    expect(edited.status, JSON.stringify(edited.body)).toBe(200)
    expect(edited.body).toMatchObject({
      status: 'approved',
      decision: 'edit',
      edited_arguments: { env: 'staging' },
    })
    const done = await waitRun(id)
    expect(textOf(done.output)).toBe('deployed web to staging')
    expect(
      deploys()
        .slice(before)
        .map((c) => c.args),
    ).toEqual([{ service: 'web', env: 'staging' }])
  })

  it('reject: the agent gets a tool error with the reason, and the tool never runs', async () => {
    const before = deploys().length
    const id = await startRun({ mode: 'tool', tool: 'github__deploy', args: { service: 'db', env: 'prod' } })
    const approvalId = (await waitRun(id)).interrupt.approval_id as string
    const r = await t.api(
      'POST',
      `/v1/approvals/${approvalId}/decision`,
      { decision: 'reject', reason: 'not on a Friday' },
      approver,
    )
    expect(r.status).toBe(200)
    const done = await waitRun(id)
    expect(done.status).toBe('succeeded')
    expect(done.output.isError).toBe(true)
    expect(textOf(done.output)).toMatch(/rejected by service:key_.*: not on a Friday/)
    expect(deploys().length).toBe(before)
  })

  it('expiry: the sweeper rejects an approval nobody decided, and the run goes on with the tool error', async () => {
    const id = await startRun({ mode: 'tool', tool: 'github__get_issue', args: { n: 7 } })
    const done = await (async () => {
      for (;;) {
        const r = await waitRun(id)
        if (r.status !== 'interrupted') return r
        await new Promise((res) => setTimeout(res, 100))
      }
    })()
    expect(done.status).toBe('succeeded')
    expect(done.output.isError).toBe(true)
    expect(textOf(done.output)).toMatch(/expired/)
    expect(up.calls.some((c) => c.tool === 'get_issue')).toBe(false)
    const list = await t.api('GET', `/v1/approvals?status=expired`, undefined, approver)
    expect(list.body.items.some((a: any) => a.run_id === id && a.decider === 'system:sweeper')).toBe(true)
  })

  it('a resume of a run paused for approval is a decision of whoever resumes it', async () => {
    const id = await startRun({ mode: 'tool', tool: 'github__deploy', args: { service: 'x', env: 'prod' } })
    await waitRun(id)
    const byMember = await t.api('POST', `/v1/runs/${id}/resume`, { value: { decision: 'approve' } }, member)
    expect(byMember.status).toBe(404) // not the member's run, and not theirs to decide
    const vague = await t.api('POST', `/v1/runs/${id}/resume`, { value: 'sure' })
    expect(vague.status).toBe(409)
    expect(vague.body.error.message).toMatch(/waits for approval/)
    const r = await t.api(
      'POST',
      `/v1/runs/${id}/resume`,
      { value: { decision: 'reject', reason: 'no' } },
      approver,
    )
    expect(r.status).toBe(404) // an approver sees approvals, not other principals' runs
    const byAdmin = await t.api('POST', `/v1/runs/${id}/resume`, { value: { decision: 'reject' } })
    expect(byAdmin.status).toBe(403) // admins are not approvers unless a rule says so
  })
})

describe('policy on direct MCP calls', () => {
  it('hides denied tools from the listing and refuses them with the reason', async () => {
    const c = await t.client({ key: member })
    const names = (await c.listTools()).tools.map((x) => x.name)
    expect(names).toContain('github__deploy')
    expect(names).not.toContain('github__delete_repo')
    const r = await c.callTool({ name: 'github__delete_repo', arguments: { name: 'x' } })
    expect(r.isError).toBe(true)
    expect(textOf(r)).toMatch(
      /policy deploys-need-approval\/1 denies github__delete_repo: repositories are deleted by hand/,
    )
    expect(up.calls.some((x) => x.tool === 'delete_repo')).toBe(false)
  })

  it('answers a client that cannot decide with the approval id; the same call runs once approved, once', async () => {
    const c = await t.client({ key: member, era: 'modern' })
    const args = { service: 'mcp', env: 'prod' }
    const first = await c.callTool({ name: 'github__deploy', arguments: args })
    expect(first.isError).toBe(true)
    const approvalId = (first.structuredContent as { approval_id: string }).approval_id
    expect(textOf(first)).toContain(`/v1/approvals/${approvalId}/decision`)
    // Asking again before a decision does not create another approval.
    const second = await c.callTool({ name: 'github__deploy', arguments: args })
    expect((second.structuredContent as { approval_id: string }).approval_id).toBe(approvalId)
    // The requester sees its own request, not other members' ones.
    const mine = await t.api('GET', '/v1/approvals', undefined, member)
    expect(mine.body.items.map((a: any) => a.id)).toEqual([approvalId])
    // …but may not decide it: only the approver role may.
    const self = await t.api('POST', `/v1/approvals/${approvalId}/decision`, { decision: 'approve' }, member)
    expect(self.status).toBe(403)
    expect(self.body.error.message).toMatch(/only the approver role may decide/)
    expect(
      (await t.api('POST', `/v1/approvals/${approvalId}/decision`, { decision: 'approve' }, approver)).status,
    ).toBe(200)
    const before = deploys().length
    const run = await c.callTool({ name: 'github__deploy', arguments: args })
    expect(run.isError).toBeFalsy()
    expect(textOf(run)).toBe('deployed mcp to prod')
    expect(deploys().length).toBe(before + 1)
    expect(deploys().at(-1)!.meta?.['io.gatehouse/idempotency-key']).toBe(approvalId)
    // An approval is used once: the next identical call asks again.
    const next = await c.callTool({ name: 'github__deploy', arguments: args })
    expect((next.structuredContent as { approval_id: string }).approval_id).not.toBe(approvalId)
    expect(deploys().length).toBe(before + 1)
  })

  it.each(['legacy', 'modern'] as const)(
    'asks an approver’s own client by form elicitation and runs the call on accept (%s)',
    async (era) => {
      const c = await t.client({ era, key: approver, capabilities: { elicitation: { form: {} } } })
      const asked: string[] = []
      c.setRequestHandler('elicitation/create', async (req) => {
        asked.push(String((req.params as { message: string }).message))
        return { action: 'accept', content: { decision: 'approve', reason: 'looks fine' } }
      })
      const before = deploys().length
      const r = await c.callTool({
        name: 'github__deploy',
        arguments: { service: `ide-${era}`, env: 'prod' },
      })
      expect(textOf(r)).toBe(`deployed ide-${era} to prod`)
      expect(asked[0]).toMatch(/^Approve the call of github__deploy/)
      expect(deploys().length).toBe(before + 1)
      const a = (await t.api('GET', '/v1/approvals?status=approved', undefined, approver)).body.items.find(
        (x: any) => x.arguments.service === `ide-${era}`,
      )
      expect(a).toMatchObject({ channel: 'mcp', reason: 'looks fine', used_at: expect.any(String) })
    },
  )

  it('an agent tool’s run paused for approval asks an approver’s client, whose answer decides', async () => {
    const c = await t.client({ key: approver, capabilities: { elicitation: { form: {} } } })
    const schemas: unknown[] = []
    c.setRequestHandler('elicitation/create', async (req) => {
      schemas.push((req.params as { requestedSchema: unknown }).requestedSchema)
      return { action: 'accept', content: { decision: 'approve' } }
    })
    const before = deploys().length
    const r = await c.callTool({
      name: 'agents__flex',
      arguments: { mode: 'tool', tool: 'github__deploy', args: { service: 'agent', env: 'prod' } },
    })
    expect(textOf(r)).toContain('deployed agent to prod')
    expect(schemas[0]).toMatchObject({ properties: { decision: { enum: ['approve', 'reject'] } } })
    expect(deploys().length).toBe(before + 1)
    const a = (await t.api('GET', '/v1/approvals?status=approved', undefined, approver)).body.items.find(
      (x: any) => x.arguments.service === 'agent',
    )
    expect(a).toMatchObject({ channel: 'resume', decider: expect.stringMatching(/^service:key_/) })
  })

  it('writes approval requests and decisions to the audit log', async () => {
    await expect
      .poll(async () => (await t.api('GET', '/v1/audit?action=approval.approve')).body.items.length)
      .toBeGreaterThan(0)
    const req = (await t.api('GET', '/v1/audit?action=approval.request')).body.items
    expect(req.length).toBeGreaterThan(0)
    expect(req[0].target).toMatch(/^github\/(deploy|get_issue)#/)
  })
})
