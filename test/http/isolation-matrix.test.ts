import { randomBytes, randomUUID } from 'node:crypto'
import { resolve } from 'node:path'
import { decodeJwt, generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Role } from '../../src/context.js'
import type { Route } from '../../src/http/router.js'
import { connectionAad, sealEnvelope } from '../../src/vault/envelope.js'
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startTestIdp, type TestIdp } from '../helpers/oidc.js'
import { agentManifests } from '../runs/manifests.js'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'

const FLEX = resolve('test/fixtures/agents/flex.mjs')

/**
 * The isolation matrix, generated from the router table itself: every route × every identity
 * below → the expected status, and no response body carries an id that belongs to a principal
 * or tenant the caller may not see. A route without an entry in TABLE fails the first test, so a
 * new route cannot ship uncovered.
 *
 * Identities are users of a real OIDC provider on loopback (npm oidc-provider). Tenant acme:
 * alice (admin), bob (member, owns the fixtures), carol (member), dave (auditor). Tenant globex:
 * erin (admin). The six bad identities present tokens that must never authenticate.
 */

const BAD = ['none', 'expired', 'wrongAudience', 'wrongIssuer', 'algNone', 'unknownKid'] as const
const GOOD = ['otherTenantAdmin', 'otherMember', 'auditor', 'admin', 'owner'] as const
type Who = (typeof BAD)[number] | (typeof GOOD)[number]
const ALL: readonly Who[] = [...BAD, ...GOOD]

const ROLE: Record<(typeof GOOD)[number], Role> = {
  otherTenantAdmin: 'admin',
  otherMember: 'member',
  auditor: 'auditor',
  admin: 'admin',
  owner: 'member',
}
const TENANT: Record<(typeof GOOD)[number], string> = {
  otherTenantAdmin: 'globex',
  otherMember: 'acme',
  auditor: 'acme',
  admin: 'acme',
  owner: 'acme',
}
const ACCOUNT: Record<(typeof GOOD)[number], string> = {
  otherTenantAdmin: 'erin',
  otherMember: 'carol',
  auditor: 'dave',
  admin: 'alice',
  owner: 'bob',
}
const isGood = (w: Who): w is (typeof GOOD)[number] => (GOOD as readonly string[]).includes(w)

interface Req {
  path: string
  body?: unknown
  headers?: Record<string, string>
  /** A streaming answer (SSE): read what arrives within a short time, then hang up. */
  stream?: boolean
}

/**
 * How a route is exercised. `kind` gives the expected status of each good identity (before the
 * route's roles, which are applied from the router table):
 * - public: no authentication at all; everyone (bad tokens included) gets `ok`
 * - any: every principal gets `ok` in its own tenant (lists, creations); the leak check does the rest
 * - owned: the target belongs to bob: bob, and acme's admin and auditor get `ok`; carol and erin 404
 * - tenant: the target belongs to tenant acme: its principals get `ok`; erin 404
 * - session: an MCP session of bob: only bob; everyone else 404 (even admins)
 * `req` builds the request; `id(x)` marks an id of the target, which the not-found probe swaps
 * for one that never existed (the answers must be indistinguishable).
 */
interface Case {
  name: string
  kind: 'public' | 'any' | 'owned' | 'tenant' | 'session'
  ok: number
  req(fx: Fixtures, who: Who, id: (real: string) => string): Promise<Req> | Req
  expect?: Partial<Record<Who, number>>
}

interface Fixtures {
  url: string
  tokens: Record<Who, string | undefined>
  thread: string
  threadForIdTest: string
  run: string
  itemNs: string[]
  itemKey: string
  bobOwner: string
  session: string
  serverSession: string
  trace: string
  /** An interrupted run of bob's (a task waiting for input). */
  interrupted: string
  pushConfig: string
  approval: string
  freshThread(): Promise<string>
  freshInterruptedRun(): Promise<string>
  freshItem(): Promise<{ ns: string[]; key: string }>
  freshKey(): Promise<string>
  freshConnector(): Promise<string>
  freshServer(): Promise<string>
  freshSession(path: string): Promise<string>
  /** A push config on a task of its own (a task holds at most 10). */
  freshPushConfig(): Promise<{ task: string; config: string }>
  freshApproval(): Promise<string>
  /** bob's account connection (connector mgh). */
  connection: string
  /** Another connection of bob's (its own connector name, so GET's fixture stays). */
  freshConnection(): Promise<string>
}

const MCP_INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'matrix', version: '1' } },
}
const mcpSessionHeaders = (sid: string) => ({ 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })
const itemQuery = (ns: string[], key: string, extra = '') =>
  `?${ns.map((n) => `namespace=${encodeURIComponent(n)}`).join('&')}&key=${encodeURIComponent(key)}${extra}`
const uniq = (p: string) => `${p}-${randomBytes(5).toString('hex')}`

/**
 * A schedule of tenant acme for the schedule routes, applied with alice's (admin) token on first
 * use; disabled, so only triggers start its runs. `fresh` makes another one (for deletes).
 */
let acmeScheduleName: Promise<string> | undefined
async function acmeSchedule(fx: Fixtures, fresh = false): Promise<string> {
  const make = async () => {
    const name = uniq('sched')
    const res = await fetch(`${fx.url}/v1/admin/manifests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fx.tokens.admin}`, 'content-type': 'application/yaml' },
      body: `apiVersion: gatehouse/v1\nkind: Schedule\nmetadata: { name: ${name} }\nspec: { cron: "0 0 1 1 *", agent: flex, input: { mode: echo }, enabled: false }\n`,
    })
    if (res.status !== 200) throw new Error(`schedule apply: ${res.status} ${await res.text()}`)
    return name
  }
  if (fresh) return make()
  return (acmeScheduleName ??= make())
}

/**
 * One entry per route of the router table, keyed `METHOD /path`. A new route needs an entry here
 * (the first test names the missing ones).
 */
const TABLE: Record<string, Case[]> = {
  'GET /healthz': [{ name: 'liveness', kind: 'public', ok: 200, req: () => ({ path: '/healthz' }) }],
  'GET /readyz': [{ name: 'readiness', kind: 'public', ok: 200, req: () => ({ path: '/readyz' }) }],
  'GET /metrics': [{ name: 'metrics', kind: 'public', ok: 200, req: () => ({ path: '/metrics' }) }],
  // Slack's interactivity URL authenticates by request signature, not bearer token; this gateway
  // has no Slack configured, so a POST is 501 for everyone (signatures: test/policy).
  'GET /hooks/slack/interactions': [
    {
      name: 'slack endpoint info',
      kind: 'public',
      ok: 200,
      req: () => ({ path: '/hooks/slack/interactions' }),
    },
  ],
  'POST /hooks/slack/interactions': [
    {
      name: 'unsigned interaction',
      kind: 'public',
      ok: 501,
      req: () => ({ path: '/hooks/slack/interactions', body: { payload: 'x' } }),
    },
  ],
  'GET /.well-known/oauth-protected-resource': [
    {
      name: 'base metadata',
      kind: 'public',
      ok: 200,
      req: () => ({ path: '/.well-known/oauth-protected-resource' }),
    },
  ],
  'GET /.well-known/oauth-protected-resource/mcp': [
    {
      name: 'mcp metadata',
      kind: 'public',
      ok: 200,
      req: () => ({ path: '/.well-known/oauth-protected-resource/mcp' }),
    },
  ],
  'GET /.well-known/oauth-protected-resource/mcp/{server}': [
    {
      name: 'server metadata',
      kind: 'public',
      ok: 200,
      req: () => ({ path: '/.well-known/oauth-protected-resource/mcp/acsrv' }),
    },
  ],
  'POST /mcp': [
    { name: 'initialize', kind: 'any', ok: 200, req: () => ({ path: '/mcp', body: MCP_INIT }) },
    {
      name: "tools/list on bob's session",
      kind: 'session',
      ok: 200,
      req: (fx, _w, id) => ({
        path: '/mcp',
        body: { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} },
        headers: mcpSessionHeaders(id(fx.session)),
      }),
    },
  ],
  'GET /mcp': [
    {
      name: "bob's session stream",
      kind: 'session',
      ok: 200,
      req: (fx, _w, id) => ({ path: '/mcp', headers: mcpSessionHeaders(id(fx.session)), stream: true }),
    },
  ],
  'DELETE /mcp': [
    {
      name: "end bob's session",
      kind: 'session',
      ok: 200,
      req: async (fx, _w, id) => ({
        path: '/mcp',
        headers: mcpSessionHeaders(id(await fx.freshSession('/mcp'))),
      }),
    },
  ],
  'POST /mcp/{server}': [
    {
      name: "initialize on acme's server",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({ path: `/mcp/${id('acsrv')}`, body: MCP_INIT }),
    },
    {
      name: "tools/list on bob's server session",
      kind: 'session',
      ok: 200,
      req: (fx, _w, id) => ({
        path: '/mcp/acsrv',
        body: { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} },
        headers: mcpSessionHeaders(id(fx.serverSession)),
      }),
    },
  ],
  'GET /mcp/{server}': [
    {
      name: "bob's server session stream",
      kind: 'session',
      ok: 200,
      req: (fx, _w, id) => ({
        path: '/mcp/acsrv',
        headers: mcpSessionHeaders(id(fx.serverSession)),
        stream: true,
      }),
    },
  ],
  'DELETE /mcp/{server}': [
    {
      name: "end bob's server session",
      kind: 'session',
      ok: 200,
      req: async (fx, _w, id) => ({
        path: '/mcp/acsrv',
        headers: mcpSessionHeaders(id(await fx.freshSession('/mcp/acsrv'))),
      }),
    },
  ],
  'POST /v1/admin/manifests': [
    {
      name: 'apply a connector in the own tenant',
      kind: 'any',
      ok: 200,
      req: () => ({
        path: '/v1/admin/manifests',
        body: `apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: ${uniq('m')} }\nspec: { transport: http, url: "http://127.0.0.1:9/mcp" }\n`,
      }),
    },
  ],
  'GET /v1/admin/tenants': [
    { name: 'list tenants', kind: 'any', ok: 200, req: () => ({ path: '/v1/admin/tenants' }) },
  ],
  'POST /v1/admin/tenants': [
    // Operators only: every admin of a tenant is refused.
    {
      name: 'create a tenant',
      kind: 'any',
      ok: 403,
      req: () => ({ path: '/v1/admin/tenants', body: { name: uniq('t') } }),
    },
  ],
  'POST /v1/admin/keys': [
    {
      name: 'create a key in the own tenant',
      kind: 'any',
      ok: 201,
      // With scopes: a scope-checked caller may only mint keys within its own.
      req: () => ({ path: '/v1/admin/keys', body: { role: 'member', scopes: ['mcp'] } }),
    },
    {
      name: 'create a key in tenant acme by name',
      kind: 'tenant',
      ok: 201,
      req: () => ({ path: '/v1/admin/keys', body: { role: 'member', tenant: 'acme', scopes: ['mcp'] } }),
    },
  ],
  'GET /v1/admin/keys': [
    { name: 'list keys', kind: 'any', ok: 200, req: () => ({ path: '/v1/admin/keys' }) },
    {
      name: 'list keys of acme by name',
      kind: 'tenant',
      ok: 200,
      req: () => ({ path: '/v1/admin/keys?tenant=acme' }),
    },
  ],
  'DELETE /v1/admin/keys/{id}': [
    {
      name: 'revoke an acme key',
      kind: 'tenant',
      ok: 204,
      req: async (fx, _w, id) => ({ path: `/v1/admin/keys/${id(await fx.freshKey())}` }),
    },
  ],
  'GET /v1/admin/connectors': [
    { name: 'list', kind: 'any', ok: 200, req: () => ({ path: '/v1/admin/connectors' }) },
  ],
  'GET /v1/admin/connectors/{name}': [
    {
      name: "acme's connector",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({ path: `/v1/admin/connectors/${id('acx')}` }),
    },
  ],
  'DELETE /v1/admin/connectors/{name}': [
    {
      name: "delete acme's connector",
      kind: 'tenant',
      ok: 204,
      req: async (fx, _w, id) => ({ path: `/v1/admin/connectors/${id(await fx.freshConnector())}` }),
    },
  ],
  'GET /oauth/connect/{connector}': [
    {
      // Anyone may connect their own account to a connector of their tenant: 302 to the provider.
      name: "connect to acme's oauth2 connector",
      kind: 'tenant',
      ok: 302,
      req: (_fx, _w, id) => ({ path: `/oauth/connect/${id('mgh')}` }),
    },
  ],
  'GET /oauth/callback': [
    {
      name: 'a callback of no flow',
      kind: 'any',
      ok: 400,
      expect: { none: 400 },
      req: () => ({ path: '/oauth/callback?state=not-a-flow&code=x' }),
    },
  ],
  'GET /oauth/client-metadata.json': [
    // Served only when the public URL is https (not in this test).
    {
      name: 'client metadata document',
      kind: 'public',
      ok: 404,
      req: () => ({ path: '/oauth/client-metadata.json' }),
    },
  ],
  'GET /v1/connections': [
    { name: 'list connections', kind: 'any', ok: 200, req: () => ({ path: '/v1/connections' }) },
  ],
  'GET /v1/connections/{id}': [
    {
      name: "bob's connection",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/connections/${id(fx.connection)}` }),
    },
  ],
  'DELETE /v1/connections/{id}': [
    {
      name: "disconnect bob's connection",
      kind: 'owned',
      ok: 200,
      // Auditors read connections; only the owner and admins remove them.
      expect: { auditor: 404 },
      req: async (fx, _w, id) => ({ path: `/v1/connections/${id(await fx.freshConnection())}` }),
    },
  ],
  'GET /v1/schedules': [
    { name: 'list schedules', kind: 'any', ok: 200, req: () => ({ path: '/v1/schedules' }) },
  ],
  'GET /v1/schedules/{name}': [
    {
      name: "acme's schedule",
      kind: 'tenant',
      ok: 200,
      req: async (fx, _w, id) => ({ path: `/v1/schedules/${id(await acmeSchedule(fx))}` }),
    },
  ],
  'PATCH /v1/schedules/{name}': [
    {
      name: "disable acme's schedule",
      kind: 'tenant',
      ok: 200,
      req: async (fx, _w, id) => ({
        path: `/v1/schedules/${id(await acmeSchedule(fx))}`,
        body: { enabled: false },
      }),
    },
  ],
  'DELETE /v1/schedules/{name}': [
    {
      name: "delete acme's schedule",
      kind: 'tenant',
      ok: 204,
      req: async (fx, _w, id) => ({ path: `/v1/schedules/${id(await acmeSchedule(fx, true))}` }),
    },
  ],
  'POST /v1/schedules/{name}/trigger': [
    {
      name: "run acme's schedule now",
      kind: 'tenant',
      ok: 201,
      req: async (fx, _w, id) => ({
        path: `/v1/schedules/${id(await acmeSchedule(fx))}/trigger`,
        body: {},
      }),
    },
  ],
  'GET /v1/admin/servers': [
    { name: 'list', kind: 'any', ok: 200, req: () => ({ path: '/v1/admin/servers' }) },
  ],
  'GET /v1/admin/servers/{name}': [
    {
      name: "acme's server",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({ path: `/v1/admin/servers/${id('acsrv')}` }),
    },
  ],
  'DELETE /v1/admin/servers/{name}': [
    {
      name: "delete acme's server",
      kind: 'tenant',
      ok: 204,
      req: async (fx, _w, id) => ({ path: `/v1/admin/servers/${id(await fx.freshServer())}` }),
    },
  ],
  'GET /v1/audit': [
    { name: 'audit log', kind: 'any', ok: 200, req: () => ({ path: '/v1/audit?limit=1000' }) },
  ],
  'GET /v1/traces': [
    { name: 'recent spans', kind: 'any', ok: 200, req: () => ({ path: '/v1/traces?limit=1000' }) },
  ],
  'GET /v1/traces/{traceId}': [
    {
      name: "trace of bob's run",
      kind: 'tenant',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/traces/${id(fx.trace)}` }),
    },
  ],
  'PUT /v1/store/items': [
    {
      name: 'write an own item',
      kind: 'any',
      ok: 204,
      req: () => ({
        path: '/v1/store/items',
        body: { namespace: ['notes'], key: uniq('own'), value: { v: 1 } },
      }),
    },
  ],
  'GET /v1/store/items': [
    {
      name: "bob's item",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/store/items${itemQuery(fx.itemNs, id(fx.itemKey))}` }),
    },
    {
      name: "bob's item by owner",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({
        path: `/v1/store/items${itemQuery(fx.itemNs, id(fx.itemKey), `&owner=${encodeURIComponent(fx.bobOwner)}`)}`,
      }),
    },
  ],
  'DELETE /v1/store/items': [
    {
      name: "delete bob's item",
      kind: 'owned',
      ok: 204,
      req: async (fx, _w, id) => {
        const it = await fx.freshItem()
        return {
          path: `/v1/store/items${itemQuery(it.ns, id(it.key), `&owner=${encodeURIComponent(fx.bobOwner)}`)}`,
        }
      },
    },
  ],
  'POST /v1/store/items/search': [
    {
      name: 'search everything',
      kind: 'any',
      ok: 200,
      req: () => ({ path: '/v1/store/items/search', body: { limit: 1000 } }),
    },
    {
      name: "search bob's items by owner",
      kind: 'any',
      ok: 200,
      req: (fx) => ({ path: '/v1/store/items/search', body: { limit: 1000, owner: fx.bobOwner } }),
    },
  ],
  'POST /v1/store/namespaces': [
    { name: 'namespaces', kind: 'any', ok: 200, req: () => ({ path: '/v1/store/namespaces', body: {} }) },
  ],
  'GET /v1/admin/webhook-secret': [
    { name: 'webhook secret', kind: 'any', ok: 200, req: () => ({ path: '/v1/admin/webhook-secret' }) },
  ],
  'GET /v1/agents': [{ name: 'agents', kind: 'any', ok: 200, req: () => ({ path: '/v1/agents' }) }],
  'POST /v1/runs': [
    {
      name: 'start a run',
      kind: 'any',
      ok: 201,
      req: () => ({ path: '/v1/runs', body: { agent: 'flex', input: { mode: 'echo', text: 'hi' } } }),
    },
    {
      name: "start a run on bob's thread",
      kind: 'owned',
      ok: 201,
      req: (fx, _w, id) => ({
        path: '/v1/runs',
        body: {
          agent: 'flex',
          input: { mode: 'echo', text: 'x' },
          thread_id: id(fx.thread),
          multitask_strategy: 'enqueue',
        },
      }),
    },
  ],
  'GET /v1/runs': [
    { name: 'list runs', kind: 'any', ok: 200, req: () => ({ path: '/v1/runs?limit=500' }) },
    {
      name: "list runs of bob's thread",
      kind: 'any',
      ok: 200,
      req: (fx) => ({ path: `/v1/runs?limit=500&thread_id=${fx.thread}` }),
    },
  ],
  'GET /v1/runs/{id}': [
    { name: "bob's run", kind: 'owned', ok: 200, req: (fx, _w, id) => ({ path: `/v1/runs/${id(fx.run)}` }) },
  ],
  'GET /v1/runs/{id}/events': [
    {
      name: "bob's run events",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/runs/${id(fx.run)}/events`, stream: true }),
    },
  ],
  'GET /v1/runs/{id}/wait': [
    {
      name: "wait for bob's run",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/runs/${id(fx.run)}/wait?timeout=0` }),
    },
  ],
  'POST /v1/runs/{id}/cancel': [
    {
      name: "cancel bob's run",
      kind: 'owned',
      ok: 202,
      req: async (fx, _w, id) => ({
        path: `/v1/runs/${id(await fx.freshInterruptedRun())}/cancel`,
        body: {},
      }),
    },
  ],
  'POST /v1/runs/{id}/resume': [
    {
      name: "resume bob's run",
      kind: 'owned',
      ok: 202,
      req: async (fx, _w, id) => ({
        path: `/v1/runs/${id(await fx.freshInterruptedRun())}/resume`,
        body: { value: 'yes' },
      }),
    },
  ],
  'POST /v1/threads': [
    { name: 'create a thread', kind: 'any', ok: 201, req: () => ({ path: '/v1/threads', body: {} }) },
    {
      // Thread ids are per tenant: another tenant may use bob's id and learns nothing (201, not 409).
      name: "create a thread with bob's id",
      kind: 'any',
      ok: 409,
      expect: { otherTenantAdmin: 201 },
      req: (fx) => ({ path: '/v1/threads', body: { thread_id: fx.threadForIdTest } }),
    },
  ],
  'GET /v1/threads': [
    { name: 'list threads', kind: 'any', ok: 200, req: () => ({ path: '/v1/threads?limit=500' }) },
  ],
  'GET /v1/threads/{id}': [
    {
      name: "bob's thread",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/threads/${id(fx.thread)}` }),
    },
  ],
  'DELETE /v1/threads/{id}': [
    {
      name: "delete bob's thread",
      kind: 'owned',
      ok: 204,
      req: async (fx, _w, id) => ({ path: `/v1/threads/${id(await fx.freshThread())}` }),
    },
  ],
  'POST /v1/threads/{id}/runs': [
    {
      name: "run on bob's thread",
      kind: 'owned',
      ok: 201,
      req: (fx, _w, id) => ({
        path: `/v1/threads/${id(fx.thread)}/runs`,
        body: { agent: 'flex', input: { mode: 'echo' }, multitask_strategy: 'enqueue' },
      }),
    },
  ],
  'GET /v1/threads/{id}/runs': [
    {
      name: "runs of bob's thread",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/threads/${id(fx.thread)}/runs` }),
    },
  ],

  // ---- approvals (a policy sends bob's agent's call of up__echo to an admin) ----
  'GET /v1/approvals': [
    { name: 'list approvals', kind: 'any', ok: 200, req: () => ({ path: '/v1/approvals?limit=500' }) },
  ],
  'GET /v1/approvals/{id}': [
    {
      name: "bob's approval",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/v1/approvals/${id(fx.approval)}` }),
    },
  ],
  'POST /v1/approvals/{id}/decision': [
    {
      // bob and the auditor see it but are not its approvers (role admin)
      name: "decide bob's approval",
      kind: 'owned',
      ok: 200,
      expect: { owner: 403, auditor: 403 },
      req: async (fx, _w, id) => ({
        path: `/v1/approvals/${id(await fx.freshApproval())}/decision`,
        body: { decision: 'reject', reason: 'matrix' },
      }),
    },
  ],

  // ---- A2A (tasks are runs; `acme-only` is an agent only tenant acme has) ----
  'GET /a2a': [{ name: 'agent cards', kind: 'any', ok: 200, req: () => ({ path: '/a2a' }) }],
  'GET /a2a/{agent}/.well-known/agent-card.json': [
    {
      name: "acme's agent card",
      kind: 'tenant',
      ok: 200,
      // Anonymous callers see tenant default's public cards: acme's agent is not there.
      expect: { none: 404 },
      req: (_fx, _w, id) => ({ path: `/a2a/${id('acme-only')}/.well-known/agent-card.json` }),
    },
  ],
  'POST /a2a/{agent}': [
    {
      // JSON-RPC answers 200 with an error object; the leak check proves nothing of bob's comes back
      name: "JSON-RPC tasks/get of bob's task",
      kind: 'any',
      ok: 200,
      req: (fx) => ({
        path: '/a2a/flex',
        body: { jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: fx.run } },
      }),
    },
    {
      name: "JSON-RPC on acme's agent",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({
        path: `/a2a/${id('acme-only')}`,
        body: { jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: 'no-such-task' } },
      }),
    },
  ],
  'GET /a2a/{agent}/extendedAgentCard': [
    {
      name: "acme's extended card",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({ path: `/a2a/${id('acme-only')}/extendedAgentCard` }),
    },
  ],
  'POST /a2a/{agent}/message:send': [
    {
      name: "send to acme's agent",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({ path: `/a2a/${id('acme-only')}/message:send`, body: a2aMessage() }),
    },
  ],
  'POST /a2a/{agent}/message:stream': [
    {
      name: "stream from acme's agent",
      kind: 'tenant',
      ok: 200,
      req: (_fx, _w, id) => ({
        path: `/a2a/${id('acme-only')}/message:stream`,
        body: a2aMessage(),
        stream: true,
      }),
    },
  ],
  'GET /a2a/{agent}/tasks': [
    { name: 'tasks', kind: 'any', ok: 200, req: () => ({ path: '/a2a/flex/tasks' }) },
  ],
  'GET /a2a/{agent}/tasks/{task}:subscribe': [
    {
      name: "subscribe to bob's task",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/a2a/flex/tasks/${id(fx.interrupted)}:subscribe`, stream: true }),
    },
  ],
  'POST /a2a/{agent}/tasks/{task}:subscribe': [
    {
      name: "subscribe to bob's task",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({
        path: `/a2a/flex/tasks/${id(fx.interrupted)}:subscribe`,
        body: {},
        stream: true,
      }),
    },
  ],
  'POST /a2a/{agent}/tasks/{task}:cancel': [
    {
      name: "cancel bob's task",
      kind: 'owned',
      ok: 200,
      req: async (fx, _w, id) => ({
        path: `/a2a/flex/tasks/${id(await fx.freshInterruptedRun())}:cancel`,
        body: {},
      }),
    },
  ],
  'GET /a2a/{agent}/tasks/{task}': [
    {
      name: "bob's task",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/a2a/flex/tasks/${id(fx.run)}` }),
    },
  ],
  'POST /a2a/{agent}/tasks/{task}/pushNotificationConfigs': [
    {
      name: "push config on bob's task",
      kind: 'owned',
      ok: 201,
      req: (fx, _w, id) => ({
        path: `/a2a/flex/tasks/${id(fx.run)}/pushNotificationConfigs`,
        body: { url: 'https://example.com/matrix-hook' },
      }),
    },
  ],
  'GET /a2a/{agent}/tasks/{task}/pushNotificationConfigs': [
    {
      name: "push configs of bob's task",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({ path: `/a2a/flex/tasks/${id(fx.run)}/pushNotificationConfigs` }),
    },
  ],
  'GET /a2a/{agent}/tasks/{task}/pushNotificationConfigs/{config}': [
    {
      name: "bob's push config",
      kind: 'owned',
      ok: 200,
      req: (fx, _w, id) => ({
        path: `/a2a/flex/tasks/${id(fx.run)}/pushNotificationConfigs/${fx.pushConfig}`,
      }),
    },
  ],
  'DELETE /a2a/{agent}/tasks/{task}/pushNotificationConfigs/{config}': [
    {
      name: "delete bob's push config",
      kind: 'owned',
      ok: 204,
      req: async (fx, _w, id) => {
        const p = await fx.freshPushConfig()
        return { path: `/a2a/flex/tasks/${id(p.task)}/pushNotificationConfigs/${p.config}` }
      },
    },
  ],
}

function a2aMessage() {
  return {
    message: {
      messageId: uniq('msg'),
      role: 'ROLE_USER',
      parts: [{ data: { mode: 'echo', text: 'via a2a' } }],
    },
  }
}

/** The status a good identity should get for a case, the route's roles included. */
function expected(route: Route, c: Case, who: Who): number {
  if (c.kind === 'public') return c.ok
  if (c.expect?.[who] !== undefined) return c.expect[who]!
  if (!isGood(who)) return 401
  if (route.roles && !route.roles.includes(ROLE[who])) return 403
  switch (c.kind) {
    case 'any':
      return c.ok
    case 'owned':
      return who === 'owner' || who === 'admin' || who === 'auditor' ? c.ok : 404
    case 'tenant':
      return TENANT[who] === 'acme' ? c.ok : 404
    case 'session':
      return who === 'owner' ? c.ok : 404
  }
}

/** Ids with their owners: who may see each. */
interface Secret {
  value: string
  tenant: string
  /** The good identity owning it; absent: the tenant's (admins and auditors see it). */
  owner?: Who
  /** Only the owner, not even admins (MCP session ids). */
  ownerOnly?: boolean
}

function maySee(who: Who, s: Secret): boolean {
  if (!isGood(who) || TENANT[who] !== s.tenant) return false
  if (s.owner === who) return true
  if (s.ownerOnly) return false
  return ROLE[who] === 'admin' || ROLE[who] === 'auditor'
}

let idp: TestIdp
let rogue: TestIdp
let upstream: { url: string; close(): Promise<void> }
let gw: TestGateway
let fx: Fixtures
const secrets: Secret[] = []

async function send(who: Who, method: string, r: Req): Promise<{ status: number; text: string; json: any }> {
  const token = fx.tokens[who]
  const ac = new AbortController()
  const res = await fetch(gw.url + r.path, {
    method,
    signal: ac.signal,
    redirect: 'manual',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      accept: 'application/json, text/event-stream',
      ...(r.body !== undefined
        ? { 'content-type': typeof r.body === 'string' ? 'application/yaml' : 'application/json' }
        : {}),
      ...r.headers,
    },
    ...(r.body !== undefined ? { body: typeof r.body === 'string' ? r.body : JSON.stringify(r.body) } : {}),
  })
  let text = ''
  if (r.stream && res.status === 200 && res.body) {
    const reader = res.body.getReader()
    const until = Date.now() + 700
    const dec = new TextDecoder()
    for (;;) {
      const left = until - Date.now()
      if (left <= 0) break
      const chunk = await Promise.race([
        reader.read(),
        new Promise<undefined>((ok) => setTimeout(() => ok(undefined), left)),
      ])
      if (!chunk || chunk.done) break
      text += dec.decode(chunk.value, { stream: true })
      if (/event: end/.test(text)) break
    }
    ac.abort()
  } else text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, text, json }
}

async function as(who: Who, method: string, path: string, body?: unknown) {
  const r = await send(who, method, { path, ...(body !== undefined ? { body } : {}) })
  if (r.status >= 300) throw new Error(`${who} ${method} ${path}: ${r.status} ${r.text}`)
  return r.json
}

beforeAll(async () => {
  const accounts = {
    alice: { tenant: 'acme', roles: ['admin'], name: 'Alice A' },
    bob: { tenant: 'acme', roles: ['member'], name: 'Bob B' },
    carol: { tenant: 'acme', roles: ['member'] },
    dave: { tenant: 'acme', roles: ['auditor'] },
    erin: { tenant: 'globex', roles: ['admin'] },
  }
  idp = await startTestIdp(accounts)
  rogue = await startTestIdp(accounts)
  gw = await startTestGateway({
    config: {
      oidc: { issuers: [{ issuer: idp.issuer, id: 'kc', tenantClaim: 'tenant', clockSkewSeconds: 0 }] },
    },
  })
  for (const t of ['acme', 'globex']) await gw.api('POST', '/v1/admin/tenants', { name: t })
  await gw.apply(agentManifests('acme') + '---\n' + agentManifests('globex'))
  upstream = await startUpstream({ era: '2025', name: 'up' })
  await gw.apply(`apiVersion: gatehouse/v1
kind: Agent
metadata: { name: acme-only, tenant: acme }
spec: { type: code, module: "${FLEX}" }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: up, tenant: acme }
spec: { transport: http, url: "${upstream.url}" }
---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: echo-needs-an-admin, tenant: acme }
spec:
  rules:
    - match: { tool: up__echo }
      decision: approve
      approvers: { role: admin }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: acx, tenant: acme }
spec: { transport: http, url: "http://127.0.0.1:9/mcp" }
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: acsrv, tenant: acme }
spec: { connectors: [acx] }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: mgh, tenant: acme }
spec:
  transport: builtin
  builtin: github
  base_url: http://127.0.0.1:9/api
  auth:
    type: oauth2
    provider: github
    authorization_endpoint: http://127.0.0.1:9/login/oauth/authorize
    token_endpoint: http://127.0.0.1:9/login/oauth/access_token
    client_id: matrix-client
`)

  const resource = `${gw.url}/mcp`
  const expired = await idp.token('alice', { resource, shortLived: true })
  const tokens = {} as Record<Who, string | undefined>
  for (const w of GOOD) tokens[w] = await idp.token(ACCOUNT[w], { resource })
  const aliceClaims = decodeJwt(tokens.admin!)
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const { privateKey } = await generateKeyPair('RS256')
  Object.assign(tokens, {
    none: undefined,
    expired,
    wrongAudience: await idp.token('alice', { resource: 'https://elsewhere.example/mcp' }),
    wrongIssuer: await rogue.token('alice', { resource }),
    algNone: `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(aliceClaims)}.`,
    unknownKid: await new SignJWT(aliceClaims)
      .setProtectedHeader({ alg: 'RS256', kid: 'unknown-kid', typ: 'at+jwt' })
      .sign(privateKey),
  })

  const base: Partial<Fixtures> = { url: gw.url, tokens }
  fx = base as Fixtures
  const bobThread = async () => (await as('owner', 'POST', '/v1/threads', {})).thread_id as string
  const waitRun = async (who: Who, id: string, status: string[]) =>
    eventually(async () => {
      const r = await as(who, 'GET', `/v1/runs/${id}`)
      return status.includes(r.status) ? r : undefined
    })
  const openSession = async (who: Who, path: string) => {
    const init = await fetch(gw.url + path, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens[who]}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify(MCP_INIT),
    })
    await init.text()
    const sid = init.headers.get('mcp-session-id')
    if (init.status !== 200 || !sid) throw new Error(`initialize on ${path}: ${init.status}`)
    const ack = await fetch(gw.url + path, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokens[who]}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...mcpSessionHeaders(sid),
      },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    })
    await ack.text()
    return sid
  }

  fx.thread = await bobThread()
  fx.threadForIdTest = await bobThread()
  const run = await as('owner', 'POST', `/v1/threads/${fx.thread}/runs`, {
    agent: 'flex',
    input: { mode: 'echo', text: 'bob says hi' },
  })
  fx.run = run.id
  await waitRun('owner', fx.run, ['succeeded'])
  fx.itemNs = ['notes', uniq('bobns')]
  fx.itemKey = uniq('bobkey')
  await as('owner', 'PUT', '/v1/store/items', {
    namespace: fx.itemNs,
    key: fx.itemKey,
    value: { secret: 'bob' },
  })
  fx.bobOwner = 'user:kc:bob'
  fx.session = await openSession('owner', '/mcp')
  fx.serverSession = await openSession('owner', '/mcp/acsrv')
  fx.trace = (await eventually(async (): Promise<string | undefined> => {
    const spans = (await gw.api('GET', '/v1/traces?tenant=acme&limit=1000')).body.items as {
      traceId: string
      name: string
    }[]
    return spans.find((s) => s.name.startsWith('run '))?.traceId
  })) as string
  fx.freshThread = bobThread
  fx.freshInterruptedRun = async () => {
    const r = await as('owner', 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'interrupt' } })
    await waitRun('owner', r.id, ['interrupted'])
    return r.id
  }
  fx.freshItem = async () => {
    const it = { ns: ['notes', 'deletable'], key: uniq('delkey') }
    await as('owner', 'PUT', '/v1/store/items', { namespace: it.ns, key: it.key, value: { v: 1 } })
    return it
  }
  fx.freshKey = async () =>
    (await gw.api('POST', '/v1/admin/keys', { role: 'member', tenant: 'acme' })).body.id
  fx.freshConnector = async () => {
    const name = uniq('c')
    await gw.apply(
      `apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: ${name}, tenant: acme }\nspec: { transport: http, url: "http://127.0.0.1:9/mcp" }\n`,
    )
    return name
  }
  fx.freshServer = async () => {
    const name = uniq('s')
    await gw.apply(
      `apiVersion: gatehouse/v1\nkind: Server\nmetadata: { name: ${name}, tenant: acme }\nspec: { connectors: [acx] }\n`,
    )
    return name
  }
  fx.freshSession = (path) => openSession('owner', path)
  fx.interrupted = await fx.freshInterruptedRun()
  fx.freshPushConfig = async () => {
    const task = (await as('owner', 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'echo' } }))
      .id as string
    const config = (
      await as('owner', 'POST', `/a2a/flex/tasks/${task}/pushNotificationConfigs`, {
        url: 'https://example.com/bob-hook',
      })
    ).id as string
    return { task, config }
  }
  fx.pushConfig = (
    await as('owner', 'POST', `/a2a/flex/tasks/${fx.run}/pushNotificationConfigs`, {
      url: 'https://example.com/bob-hook',
    })
  ).id
  fx.freshApproval = async () => {
    // the connector may still be connecting: retry until the run pauses for approval
    const run = await eventually(async () => {
      const r = await as('owner', 'POST', '/v1/runs', {
        agent: 'flex',
        input: { mode: 'tool', tool: 'up__echo', args: { text: 'bob-approval-args' } },
      })
      const done = await waitRun('owner', r.id, ['interrupted', 'failed', 'succeeded'])
      return done.status === 'interrupted' ? done : undefined
    }, 20_000)
    return run.interrupt.approval_id as string
  }
  fx.approval = await fx.freshApproval()
  // bob's account connections, stored as the broker stores them (the flow itself: test/connections)
  const bobConnection = async (connector: string) => {
    const id = randomUUID()
    const c = { tenant: 'acme', userId: 'user:kc:bob', connector, id }
    const { record } = await gw.gw.store.connections.save({
      ...c,
      provider: 'http://127.0.0.1:9',
      scopes: ['repo'],
      sealed: await sealEnvelope(
        gw.gw.keyProvider,
        '{"a":"bob-upstream-token","t":"bearer"}',
        connectionAad(c),
      ),
      hasRefreshToken: false,
    })
    return record.id
  }
  fx.connection = await bobConnection('mgh')
  fx.freshConnection = () => bobConnection('mgh-other')

  // carol's and erin's own things: foreign to others
  const carolThread = (await as('otherMember', 'POST', '/v1/threads', {})).thread_id
  const carolRun = (await as('otherMember', 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'echo' } }))
    .id
  const erinThread = (await as('otherTenantAdmin', 'POST', '/v1/threads', {})).thread_id
  const erinRun = (
    await as('otherTenantAdmin', 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'echo' } })
  ).id
  const erinKey = uniq('erinkey')
  await as('otherTenantAdmin', 'PUT', '/v1/store/items', {
    namespace: [uniq('erinns')],
    key: erinKey,
    value: {},
  })
  // Erin's token is scope-checked: a key she mints must stay within her scopes.
  const erinApiKey = (
    await as('otherTenantAdmin', 'POST', '/v1/admin/keys', { role: 'member', scopes: ['mcp'] })
  ).id
  const acmeApiKey = (await as('admin', 'POST', '/v1/admin/keys', { role: 'member', scopes: ['mcp'] })).id
  const acmeSecret = (await as('admin', 'GET', '/v1/admin/webhook-secret')).secret
  const globexSecret = (await as('otherTenantAdmin', 'GET', '/v1/admin/webhook-secret')).secret
  secrets.push(
    { value: fx.thread, tenant: 'acme', owner: 'owner' },
    // (fx.threadForIdTest is not secret: erin creates a thread with that id in globex on purpose)
    { value: fx.run, tenant: 'acme', owner: 'owner' },
    { value: fx.itemKey, tenant: 'acme', owner: 'owner' },
    { value: fx.itemNs[1]!, tenant: 'acme', owner: 'owner' },
    { value: 'bob says hi', tenant: 'acme', owner: 'owner' },
    { value: 'kc:bob', tenant: 'acme', owner: 'owner' },
    { value: fx.session, tenant: 'acme', owner: 'owner', ownerOnly: true },
    { value: fx.serverSession, tenant: 'acme', owner: 'owner', ownerOnly: true },
    { value: fx.trace, tenant: 'acme', owner: 'owner' },
    { value: fx.interrupted, tenant: 'acme', owner: 'owner' },
    { value: fx.pushConfig, tenant: 'acme', owner: 'owner' },
    { value: fx.connection, tenant: 'acme', owner: 'owner' },
    { value: 'bob-hook', tenant: 'acme', owner: 'owner' },
    { value: fx.approval, tenant: 'acme', owner: 'owner' },
    { value: 'bob-approval-args', tenant: 'acme', owner: 'owner' },
    { value: carolThread, tenant: 'acme', owner: 'otherMember' },
    { value: carolRun, tenant: 'acme', owner: 'otherMember' },
    { value: 'kc:carol', tenant: 'acme', owner: 'otherMember' },
    { value: acmeApiKey, tenant: 'acme', owner: 'admin' },
    { value: acmeSecret, tenant: 'acme', owner: 'admin' },
    { value: 'kc:alice', tenant: 'acme', owner: 'admin' },
    { value: erinThread, tenant: 'globex', owner: 'otherTenantAdmin' },
    { value: erinRun, tenant: 'globex', owner: 'otherTenantAdmin' },
    { value: erinKey, tenant: 'globex', owner: 'otherTenantAdmin' },
    { value: erinApiKey, tenant: 'globex', owner: 'otherTenantAdmin' },
    { value: globexSecret, tenant: 'globex', owner: 'otherTenantAdmin' },
    { value: 'kc:erin', tenant: 'globex', owner: 'otherTenantAdmin' },
  )
  // the short-lived token has run out by now (skew 0)
  const exp = decodeJwt(expired).exp! * 1000
  if (exp >= Date.now()) await new Promise((r) => setTimeout(r, exp - Date.now() + 100))
}, 120_000)

afterAll(async () => {
  await gw?.close()
  await Promise.all([idp?.close(), rogue?.close(), upstream?.close()])
})

const routeKey = (r: Route) => `${r.method} ${r.path}`

describe('isolation matrix over the router table', () => {
  it('every route has an entry (add one to TABLE for a new route) and every entry a route', () => {
    const routes = gw.gw.routes.map(routeKey)
    expect(routes.length).toBeGreaterThan(40)
    expect(
      routes.filter((k) => !TABLE[k]?.length),
      'routes without an isolation-matrix entry',
    ).toEqual([])
    expect(
      Object.keys(TABLE).filter((k) => !routes.includes(k)),
      'entries for routes that do not exist',
    ).toEqual([])
  })

  it('every route × identity gets the expected status, 404s are indistinguishable from unknown ids, and nothing foreign leaks', async () => {
    const problems: string[] = []
    let checked = 0
    for (const route of gw.gw.routes) {
      for (const c of TABLE[routeKey(route)] ?? []) {
        for (const who of ALL) {
          const label = `${routeKey(route)} [${c.name}] as ${who}`
          const want = expected(route, c, who)
          const ids: string[] = []
          const req = await c.req(fx, who, (real) => (ids.push(real), real))
          const got = await send(who, route.method, req)
          checked++
          if (got.status !== want) {
            problems.push(`${label}: expected ${want}, got ${got.status} ${got.text.slice(0, 200)}`)
            continue
          }
          // nothing the caller may not see, unless the caller put it in the request itself
          const echoed = JSON.stringify(req)
          for (const s of secrets) {
            if (!maySee(who, s) && !echoed.includes(s.value) && got.text.includes(s.value))
              problems.push(`${label}: the answer contains ${s.value} (of ${s.owner} in ${s.tenant})`)
          }
          if (want === 401) {
            if (got.json?.error?.code !== 'unauthenticated') problems.push(`${label}: 401 without error code`)
          }
          // a target that exists but is not the caller's answers exactly like one that never existed
          if (
            want === 404 &&
            (c.kind === 'owned' || c.kind === 'tenant' || c.kind === 'session') &&
            ids.length
          ) {
            const swapped: [string, string][] = []
            const missingReq = await c.req(fx, who, (real) => {
              const fake = `${real.slice(0, 4)}${randomBytes(8).toString('hex')}`
              swapped.push([real, fake])
              return fake
            })
            const missing = await send(who, route.method, missingReq)
            const norm = (t: string, pairs: [string, string][], pick: 0 | 1) =>
              pairs.reduce((acc, p) => acc.split(p[pick]).join('<id>'), t)
            // ids of fresh fixtures differ per call: normalise both answers by what each request used
            const a = norm(
              got.text,
              ids.map((x) => [x, x] as [string, string]),
              0,
            )
            const b = norm(missing.text, swapped, 1)
            if (missing.status !== got.status || a !== b)
              problems.push(
                `${label}: not indistinguishable from an unknown id: ${got.status} ${a.slice(0, 150)} vs ${missing.status} ${b.slice(0, 150)}`,
              )
          }
        }
      }
    }
    expect(problems, problems.join('\n')).toEqual([])
    expect(checked).toBeGreaterThan(500)
  }, 300_000)
})
