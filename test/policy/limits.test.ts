import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { createContext, systemContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import { PolicySpecSchema } from '../../src/manifests/schema.js'
import { PolicyEngine } from '../../src/policy/engine.js'
import { LimitExceededError, Limits, periodOf } from '../../src/policy/limits.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { ResourceRecord } from '../../src/store/types.js'
import { AuditWriter } from '../../src/telemetry/audit.js'
// @ts-expect-error — plain JS fixture
import { startOpenAiServer } from '../fixtures/openai-server.mjs'
import { httpConnector, mcpHeaders, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startPolicyUpstream, type PolicyUpstream } from './upstream.js'

const run = promisify(execFile)
const dir = mkdtempSync(join(tmpdir(), 'gh-limits-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('durable counters', () => {
  it('never let processes racing on one SQLite file reserve more than the limit', async () => {
    const path = join(dir, 'race.db')
    const store = openSqliteStore({ path })
    await store.close()
    const worker = join(import.meta.dirname, 'reserve-worker.ts')
    const outs = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(process.execPath, ['--import', 'tsx', worker, path, 'tenant|b|user:u|calls', '100', '60']),
      ),
    )
    const won = outs.map((o) => Number(o.stdout))
    expect(won.reduce((a, b) => a + b, 0)).toBe(100)
    const again = openSqliteStore({ path })
    expect(await again.limits.used('tenant|b|user:u|calls', 'total')).toBe(100)
    await again.close()
  })

  it('token buckets refill with time and say how long to wait', async () => {
    const store = openSqliteStore({ path: ':memory:' })
    const t0 = 1_000_000
    for (let i = 0; i < 3; i++) expect((await store.limits.take('k', 3, 1 / 1000, t0)).ok).toBe(true)
    const no = await store.limits.take('k', 3, 1 / 1000, t0 + 200)
    expect(no).toEqual({ ok: false, retryAfterMs: 800 })
    expect((await store.limits.take('k', 3, 1 / 1000, t0 + 1000)).ok).toBe(true)
    // A clock that goes back does not refill twice.
    expect((await store.limits.take('k', 3, 1 / 1000, t0)).ok).toBe(false)
    await store.close()
  })

  it('periods are UTC calendar windows', () => {
    const at = Date.UTC(2025, 0, 31, 23, 59, 30)
    expect(periodOf('day', at)).toEqual({ period: '2025-01-31', endsMs: Date.UTC(2025, 1, 1) })
    expect(periodOf('month', at).period).toBe('2025-01')
    expect(periodOf('hour', at).period).toBe('2025-01-31T23')
    expect(periodOf('minute', at).endsMs).toBe(Date.UTC(2025, 0, 31, 23, 60))
  })
})

describe('spend budgets (model tokens and cost)', () => {
  it('overspend under concurrency is at most what the calls already in flight add', async () => {
    const store = openSqliteStore({ path: join(dir, 'spend.db') })
    const audit = new AuditWriter({ store: store.audit, logger: createLogger('silent'), mode: 'sync' })
    const limits = new Limits({
      store: store.limits,
      audit,
      prices: { m: { input_per_mtok: 1, output_per_mtok: 1 } },
    })
    const engine = new PolicyEngine({ limits, hashKey: 'k' })
    const spec = PolicySpecSchema.parse(
      parseYaml('budgets: [{ name: daily, per: user, window: day, cost_usd: 5, tokens: 100000000 }]'),
    )
    engine.load([
      { kind: 'Policy', tenant: 'acme', name: 'spend', spec, generation: 1, updatedAt: '' } as ResourceRecord,
    ])
    const user = createContext({ tenant: 'acme', principal: { kind: 'user', id: 'u1' }, roles: ['member'] })
    const dollar = { model: 'm', promptTokens: 500_000, completionTokens: 500_000 } // $1
    // Nearly spent: $4.50.
    await engine.recordUsage(user, { model: 'm', promptTokens: 2_250_000, completionTokens: 2_250_000 })
    // 8 model calls at once: each is admitted while the spend is under the limit, then records $1.
    let admitted = 0
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        try {
          await engine.admitSpend(user)
        } catch {
          return
        }
        admitted++
        await new Promise((r) => setTimeout(r, 5))
        await engine.recordUsage(user, dollar)
      }),
    )
    const spent =
      (await store.limits.used(`acme|spend/daily|user:u1|cost`, periodOf('day', Date.now()).period)) / 1e6
    expect(spent).toBeGreaterThan(5)
    expect(spent).toBeLessThanOrEqual(4.5 + admitted)
    // Once over, nothing more is admitted, and the refusal names the limit and when to retry.
    const err = await engine.admitSpend(user).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(LimitExceededError)
    expect((err as LimitExceededError).limit).toMatchObject({
      kind: 'budget',
      metric: 'cost_usd',
      limit: 5,
      per: 'user',
    })
    expect((err as LimitExceededError).retryAfterSeconds).toBeGreaterThan(0)
    // Another user is untouched.
    await engine.admitSpend(createContext({ tenant: 'acme', principal: { kind: 'user', id: 'u2' } }))
    await expect
      .poll(async () =>
        (await store.audit.list(systemContext('acme'))).items.some(
          (r) => r.action === 'budget.exceeded' && r.outcome === 'denied',
        ),
      )
      .toBe(true)
    await store.close()
  })
})

describe('budgets and rate limits on calls (gateway)', () => {
  let up: PolicyUpstream
  let ai: { url: string; requests: unknown[]; close(): Promise<void> }
  let t: TestGateway
  let member: string
  beforeAll(async () => {
    process.env.POLICY_TEST_LLM_KEY = 'sk-test-llm-key-policy-0123456789'
    up = await startPolicyUpstream()
    ai = await startOpenAiServer(
      [
        { text: 'first', usage: { prompt_tokens: 20, completion_tokens: 30 } },
        { text: 'second', usage: { prompt_tokens: 1, completion_tokens: 1 } },
        {
          toolCalls: [{ name: 'api__echo', arguments: { text: 'spend it all' } }],
          usage: { prompt_tokens: 20, completion_tokens: 30 },
        },
        { text: 'never asked: the budget stops the run before this model call' },
      ],
      { apiKey: 'sk-test-llm-key-policy-0123456789' },
    )
    // $0.10 per token: one run of 50 tokens spends the whole $5.
    t = await startTestGateway({
      config: { modelPrices: { 'test-model': { input_per_mtok: 100_000, output_per_mtok: 100_000 } } },
    })
    await t.apply(
      httpConnector('api', up.url) +
        '---\n' +
        httpConnector('rl', up.url) +
        `---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: helper }
spec: { type: llm, base_url: "${ai.url}", model: test-model, api_key: { env: POLICY_TEST_LLM_KEY }, max_steps: 3 }
---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: spend }
spec:
  budgets:
    - { name: calls, per: user, window: day, tool_calls: 5, match: { connector: api } }
    - { name: five-dollars, per: user, window: day, cost_usd: 5 }
  rate_limits:
    - { name: slow, per: user, per_minute: 2, match: { connector: rl } }
`,
    )
    member = (await t.api('POST', '/v1/admin/keys', { role: 'member' })).body.key
  })
  afterAll(async () => {
    await t?.close()
    await up?.close()
    await ai?.close()
  })

  it('concurrent calls against a call budget never overspend it', async () => {
    const c = await t.client({ key: member, era: 'modern' })
    const before = up.calls.length
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => c.callTool({ name: 'api__get_issue', arguments: { n: i } })),
    )
    const ok = results.filter((r) => r.status === 'fulfilled')
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[]
    expect(ok).toHaveLength(5)
    expect(up.calls.length - before).toBe(5)
    expect(refused).toHaveLength(15)
    const e = refused[0]!.reason as { code: number; data: any; message: string }
    expect(e.code).toBe(-32029)
    expect(e.data.limit).toMatchObject({
      kind: 'budget',
      name: 'spend/calls',
      metric: 'tool_calls',
      limit: 5,
      used: 5,
    })
    expect(e.data.retry_after_seconds).toBeGreaterThan(0)
    expect(e.message).toMatch(/budget spend\/calls/)
    await expect
      .poll(async () => (await t.api('GET', '/v1/audit?action=budget.exceeded')).body.items.length)
      .toBeGreaterThanOrEqual(15)
  })

  it('a rate limit answers a JSON-RPC error with the limit in its data', async () => {
    const post = (n: number) =>
      fetch(`${t.url}/mcp`, {
        method: 'POST',
        headers: mcpHeaders(
          { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'rl__get_issue' },
          member,
        ),
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: n,
          method: 'tools/call',
          params: {
            name: 'rl__get_issue',
            arguments: { n },
            _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' },
          },
        }),
      }).then((r) => r.json() as Promise<any>)
    expect((await post(1)).result).toBeTruthy()
    expect((await post(2)).result).toBeTruthy()
    const third = await post(3)
    expect(third.error.code).toBe(-32029)
    expect(third.error.data.limit).toMatchObject({
      kind: 'rate_limit',
      name: 'spend/slow',
      metric: 'per_minute',
      limit: 2,
    })
    expect(third.error.data.retry_after_seconds).toBeGreaterThanOrEqual(1)
  })

  it('each user may spend $5 a day: the next run is refused with 429 and Retry-After', async () => {
    const first = await t.api('POST', '/v1/runs', { agent: 'helper', input: { text: 'hi' } }, member)
    expect(first.status, JSON.stringify(first.body)).toBe(201)
    const done = await t.api('GET', `/v1/runs/${first.body.id}/wait?timeout=20`, undefined, member)
    expect(done.body.status).toBe('succeeded')
    let second: Awaited<ReturnType<TestGateway['api']>> | undefined
    await expect
      .poll(
        async () =>
          (second = await t.api('POST', '/v1/runs', { agent: 'helper', input: { text: 'again' } }, member))
            .status,
      )
      .toBe(429)
    expect(Number(second!.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(second!.body.error).toMatchObject({ code: 'rate_limited' })
    expect(second!.body.error.message).toMatch(
      /budget spend\/five-dollars \(cost_usd \$5 per day per user\) is spent/,
    )
    // Another user still may.
    const other = await t.api('POST', '/v1/admin/keys', { role: 'member' })
    const r = await t.api('POST', '/v1/runs', { agent: 'helper', input: { text: 'x' } }, other.body.key)
    expect(r.status).toBe(201)
  })

  it('a run that spends its user’s budget mid-way starts no further model call', async () => {
    const key = (await t.api('POST', '/v1/admin/keys', { role: 'member' })).body.key
    const modelCalls = ai.requests.length
    const r = await t.api('POST', '/v1/runs', { agent: 'helper', input: { text: 'go' } }, key)
    expect(r.status).toBe(201)
    const done = (await t.api('GET', `/v1/runs/${r.body.id}/wait?timeout=20`, undefined, key)).body
    expect(done.status).toBe('failed')
    expect(done.error.code).toBe('rate_limited')
    expect(done.error.message).toMatch(/budget spend\/five-dollars/)
    // One model call spent the $5: the tool call it asked for was refused, and so was the next model call.
    expect(ai.requests.length).toBe(modelCalls + 1)
    expect(up.calls.some((c) => c.tool === 'echo' && c.args.text === 'spend it all')).toBe(false)
  })
})
