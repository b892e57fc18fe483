import { createSecretKey, randomBytes } from 'node:crypto'
import { decodeJwt, generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import {
  ADMIN_KEY,
  eventually,
  httpConnector,
  startTestGateway,
  textOf,
  type TestGateway,
} from '../helpers/gateway.js'
import { startTestIdp, type TestIdp } from '../helpers/oidc.js'
import { agentManifests } from '../runs/manifests.js'

/**
 * OAuth 2.1 resource server: JWT access tokens from real OIDC providers on loopback
 * (npm oidc-provider), validated with jose; RFC 9728 metadata; 401/403 challenges; scope step-up;
 * tenant and role mapping; tokens never forwarded upstream.
 */

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'oidc-test', version: '1' },
  },
}

let kc: TestIdp // claim-mapped issuer: tenant and roles claims
let solo: TestIdp // fixed-tenant issuer: groups mapped to roles, no scope requirement
let rogue: TestIdp // not configured anywhere
let gw: TestGateway
let upstream: { url: string; close(): Promise<void> }

const bearer = (t: string) => ({ authorization: `Bearer ${t}` })

async function call(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(gw.url + path, {
    method,
    headers: {
      ...(token !== undefined ? bearer(token) : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      accept: 'application/json, text/event-stream',
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    const data = [...text.matchAll(/^data: ?(.+)$/gm)].map((m) => m[1]!).filter((d) => d.trim())
    if (data.length) parsed = JSON.parse(data[data.length - 1]!)
  }
  return { status: res.status, body: parsed, headers: res.headers }
}

/** The auth-params of a `WWW-Authenticate: Bearer …` header. */
function challenge(h: string | null): Record<string, string> {
  expect(h).toMatch(/^Bearer /)
  return Object.fromEntries([...h!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]))
}

beforeAll(async () => {
  kc = await startTestIdp({
    alice: { tenant: 'acme', roles: ['admin'], name: 'Alice' },
    bob: { tenant: 'acme', roles: ['member'] },
    nobody: { tenant: 'nowhere', roles: ['member'] },
    tenantless: { roles: ['member'] },
    plain: { tenant: 'acme' },
  })
  solo = await startTestIdp({
    bob: { claims: { groups: ['gh-devs'] } },
    boss: { claims: { groups: ['gh-admins', 'unrelated'] } },
    stranger: { claims: { groups: ['unrelated'] } },
  })
  rogue = await startTestIdp({ alice: { tenant: 'acme', roles: ['admin'] } })
  upstream = await startUpstream({ era: '2025', name: 'up' })
  gw = await startTestGateway({
    config: {
      oidc: {
        issuers: [
          { issuer: kc.issuer, id: 'kc', tenantClaim: 'tenant', clockSkewSeconds: 2 },
          {
            issuer: solo.issuer,
            id: 'solo',
            tenant: 'acme',
            rolesClaim: 'groups',
            roleMap: { 'gh-admins': 'admin', 'gh-devs': 'member' },
            defaultRole: 'none',
            requireScopes: false,
            advertise: false,
          },
        ],
      },
    },
  })
  await gw.api('POST', '/v1/admin/tenants', { name: 'acme' })
  await gw.apply(
    agentManifests('acme') +
      '---\n' +
      httpConnector('up', upstream.url).replace(
        'metadata: { name: up }',
        'metadata: { name: up, tenant: acme }',
      ),
  )
})

afterAll(async () => {
  await gw?.close()
  await Promise.all([kc?.close(), solo?.close(), rogue?.close(), upstream?.close()])
})

const mcp = () => `${gw.url}/mcp`

describe('RFC 9728 protected-resource metadata', () => {
  it('is served for the base resource, /mcp and every /mcp/{server}, naming the advertised issuers and scopes', async () => {
    const m = await call('GET', '/.well-known/oauth-protected-resource/mcp', undefined)
    expect(m.status).toBe(200)
    expect(m.body).toEqual({
      resource: `${gw.url}/mcp`,
      authorization_servers: [kc.issuer],
      scopes_supported: ['mcp'],
      bearer_methods_supported: ['header'],
      resource_name: 'Gatehouse',
    })
    const s = await call('GET', '/.well-known/oauth-protected-resource/mcp/anything', undefined)
    expect(s.body.resource).toBe(`${gw.url}/mcp/anything`)
    const base = await call('GET', '/.well-known/oauth-protected-resource', undefined)
    expect(base.body.resource).toBe(gw.url)
    expect(base.body.scopes_supported).toEqual(expect.arrayContaining(['mcp', 'gatehouse:admin']))
  })

  it('401 without a token names the metadata and the scope; the named document is the resource asked for', async () => {
    for (const path of ['/mcp', '/mcp/srv1']) {
      const r = await call('POST', path, undefined, INITIALIZE)
      expect(r.status).toBe(401)
      const c = challenge(r.headers.get('www-authenticate'))
      expect(c).toEqual({
        resource_metadata: `${gw.url}/.well-known/oauth-protected-resource${path}`,
        scope: 'mcp',
      })
      // what an MCP client does next
      const meta = (await (await fetch(c.resource_metadata!)).json()) as { resource: string }
      expect(meta.resource).toBe(gw.url + path)
    }
    const admin = await call('GET', '/v1/admin/keys', undefined)
    expect(challenge(admin.headers.get('www-authenticate'))).toEqual({
      resource_metadata: `${gw.url}/.well-known/oauth-protected-resource`,
      scope: 'gatehouse:admin',
    })
    const runs = await call('GET', '/v1/runs', undefined)
    expect(challenge(runs.headers.get('www-authenticate'))).toEqual({
      resource_metadata: `${gw.url}/.well-known/oauth-protected-resource`,
    })
  })

  it('a refused token gets error="invalid_token" with a description', async () => {
    const r = await call('POST', '/mcp', 'gk_nope_nope_nope_nope', INITIALIZE)
    expect(r.status).toBe(401)
    const c = challenge(r.headers.get('www-authenticate'))
    expect(c.error).toBe('invalid_token')
    expect(c.error_description).toBeTruthy()
    expect(c.resource_metadata).toBe(`${gw.url}/.well-known/oauth-protected-resource/mcp`)
  })
})

describe('JWT access tokens', () => {
  it('a user token for this gateway opens MCP and the REST API, as a user principal namespaced by issuer', async () => {
    const t = await kc.token('alice', { resource: mcp() })
    const init = await call('POST', '/mcp', t, INITIALIZE)
    expect(init.status).toBe(200)
    expect(init.body.result.protocolVersion).toBeTruthy()
    expect((await call('GET', '/v1/runs', t)).status).toBe(200)
    expect((await call('GET', '/v1/admin/keys', t)).status).toBe(200)
    const put = await call('PUT', '/v1/store/items', t, { namespace: ['who'], key: 'k', value: { a: 1 } })
    expect(put.status).toBe(204)
    const got = await call('GET', '/v1/store/items?namespace=who&key=k', t)
    expect(got.body.owner).toBe('user:kc:alice')
  })

  it('the same sub from two issuers is two principals', async () => {
    const kcBob = await kc.token('bob', { resource: mcp() })
    const soloBob = await solo.token('bob', { resource: mcp() })
    const th = await call('POST', '/v1/threads', kcBob, {})
    expect(th.status).toBe(201)
    expect((await call('GET', `/v1/threads/${th.body.thread_id}`, kcBob)).status).toBe(200)
    expect((await call('GET', `/v1/threads/${th.body.thread_id}`, soloBob)).status).toBe(404)
    const put = await call('PUT', '/v1/store/items', soloBob, {
      namespace: ['who'],
      key: 'k',
      value: { solo: 1 },
    })
    expect(put.status).toBe(204)
    expect((await call('GET', '/v1/store/items?namespace=who&key=k', kcBob)).status).toBe(404)
    expect((await call('GET', '/v1/store/items?namespace=who&key=k', soloBob)).body.value).toEqual({
      solo: 1,
    })
  })

  it('a token for /mcp/{server} is good on that server only; a token for another resource nowhere', async () => {
    const srv = await kc.token('alice', { resource: `${gw.url}/mcp/srv1` })
    // authenticated (the server does not exist: 404, not 401)
    expect((await call('POST', '/mcp/srv1', srv, INITIALIZE)).status).toBe(404)
    for (const [m, p] of [
      ['POST', '/mcp'],
      ['POST', '/mcp/srv2'],
      ['GET', '/v1/runs'],
    ] as const) {
      const r = await call(m, p, srv, m === 'POST' ? INITIALIZE : undefined)
      expect(r.status, p).toBe(401)
      expect(r.body.error.message).toMatch(/audience/)
    }
    const other = await kc.token('alice', { resource: 'https://other.example/api' })
    expect((await call('POST', '/mcp', other, INITIALIZE)).status).toBe(401)
    expect((await call('GET', '/v1/runs', other)).status).toBe(401)
    // the base URL itself is this gateway too
    const base = await kc.token('alice', { resource: gw.url })
    expect((await call('GET', '/v1/runs', base)).status).toBe(200)
  })

  it('refuses other issuers, alg none, HMAC with the public key, unknown kid and forged signatures', async () => {
    const good = decodeJwt(await kc.token('alice', { resource: mcp() }))
    const now = Math.floor(Date.now() / 1000)
    const claims = { ...good, iat: now, exp: now + 600 }
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const { privateKey: otherKey } = await generateKeyPair('RS256')
    // the issuer's public key, as published: the secret of the classic RS256 → HS256 confusion
    const discovery = (await (await fetch(`${kc.issuer}/.well-known/openid-configuration`)).json()) as {
      jwks_uri: string
    }
    const publicJwks = await (await fetch(discovery.jwks_uri)).text()
    const cases: [string, string][] = [
      ['other issuer', await rogue.token('alice', { resource: mcp() })],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`],
      ['alg none with kid', `${b64({ alg: 'none', kid: 'idp-key-1' })}.${b64(claims)}.sig`],
      [
        'HS256 keyed with public material',
        await new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', kid: 'idp-key-1' })
          .sign(createSecretKey(Buffer.from(publicJwks))),
      ],
      [
        'unknown kid',
        await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'gone' }).sign(otherKey),
      ],
      [
        'forged with the right kid',
        await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'idp-key-1' }).sign(otherKey),
      ],
      [
        'tampered payload',
        (await kc.sign(claims)).replace(/\.[^.]+\./, `.${b64({ ...claims, tenant: 'x' })}.`),
      ],
    ]
    for (const [name, token] of cases) {
      const r = await call('POST', '/mcp', token, INITIALIZE)
      expect(r.status, name).toBe(401)
      expect(r.body.error.code, name).toBe('unauthenticated')
      expect(challenge(r.headers.get('www-authenticate')).error, name).toBe('invalid_token')
    }
    // the unmodified claims, signed by the issuer, are fine
    expect((await call('POST', '/mcp', await kc.sign(claims), INITIALIZE)).status).toBe(200)
  })

  it('expiry: a small clock skew is tolerated, more is not', async () => {
    const good = decodeJwt(await kc.token('alice', { resource: mcp() }))
    const now = Math.floor(Date.now() / 1000)
    const justExpired = await kc.sign({ ...good, iat: now - 60, exp: now - 1 })
    expect((await call('GET', '/v1/runs', justExpired)).status).toBe(200)
    const expired = await kc.sign({ ...good, iat: now - 60, exp: now - 30 })
    const r = await call('GET', '/v1/runs', expired)
    expect(r.status).toBe(401)
    expect(r.body.error.message).toMatch(/expired/)
    const future = await kc.sign({ ...good, iat: now, nbf: now + 60, exp: now + 600 })
    expect((await call('GET', '/v1/runs', future)).status).toBe(401)
    const noExp = await kc.sign({ ...good, exp: undefined })
    expect((await call('GET', '/v1/runs', noExp)).status).toBe(401)
  })

  it('a cached token stops working when it expires', async () => {
    const t = await kc.token('alice', { resource: mcp(), shortLived: true })
    expect((await call('GET', '/v1/runs', t)).status).toBe(200)
    const exp = decodeJwt(t).exp! * 1000
    await new Promise((r) => setTimeout(r, Math.max(0, exp + 2000 - Date.now()) + 300))
    expect((await call('GET', '/v1/runs', t)).status).toBe(401)
  })

  it('tenant mapping: a claim naming an unprovisioned tenant is 403, a missing claim 401; fixed-tenant issuers need no claim', async () => {
    const nowhere = await call('GET', '/v1/runs', await kc.token('nobody', { resource: mcp() }))
    expect(nowhere.status).toBe(403)
    expect(nowhere.body.error.message).toMatch(/not provisioned/)
    expect((await call('GET', '/v1/runs', await kc.token('tenantless', { resource: mcp() }))).status).toBe(
      401,
    )
    // solo users are in acme: they see acme's agents
    const boss = await solo.token('boss', { resource: mcp() })
    const agents = await call('GET', '/v1/agents', boss)
    expect(agents.status).toBe(200)
    expect(agents.body.items.map((a: { name: string }) => a.name)).toContain('flex')
  })

  it('roles: mapped from a claim (roleMap), a default role, or refused when the issuer has none', async () => {
    const boss = await solo.token('boss', { resource: mcp() })
    expect((await call('GET', '/v1/admin/keys', boss)).status).toBe(200)
    const dev = await solo.token('bob', { resource: mcp() })
    expect((await call('GET', '/v1/admin/keys', dev)).status).toBe(403)
    expect((await call('GET', '/v1/runs', dev)).status).toBe(200)
    const stranger = await call('GET', '/v1/runs', await solo.token('stranger', { resource: mcp() }))
    expect(stranger.status).toBe(403)
    expect(stranger.body.error.message).toMatch(/no Gatehouse role/)
    // kc's default role is member
    const plain = await kc.token('plain', { resource: mcp() })
    expect((await call('GET', '/v1/runs', plain)).status).toBe(200)
    expect((await call('GET', '/v1/admin/keys', plain)).status).toBe(403)
  })
})

describe('scopes and step-up', () => {
  it('403 insufficient_scope lists the full scope set (granted plus required) in the challenge and the body', async () => {
    const mcpOnly = await kc.token('alice', { resource: mcp(), scopes: ['mcp'] })
    expect((await call('POST', '/mcp', mcpOnly, INITIALIZE)).status).toBe(200)
    const r = await call('GET', '/v1/admin/keys', mcpOnly)
    expect(r.status).toBe(403)
    const c = challenge(r.headers.get('www-authenticate'))
    expect(c.error).toBe('insufficient_scope')
    expect(c.scope!.split(' ').sort()).toEqual(['gatehouse:admin', 'mcp'])
    expect(c.resource_metadata).toBe(`${gw.url}/.well-known/oauth-protected-resource`)
    expect(r.body.error.details).toMatchObject({
      error: 'insufficient_scope',
      required_scope: 'gatehouse:admin',
    })

    const noMcp = await kc.token('alice', { resource: mcp(), scopes: ['extra'] })
    const m = await call('POST', '/mcp', noMcp, INITIALIZE)
    expect(m.status).toBe(403)
    const mc = challenge(m.headers.get('www-authenticate'))
    expect(mc.scope!.split(' ').sort()).toEqual(['extra', 'mcp'])
    expect(mc.resource_metadata).toBe(`${gw.url}/.well-known/oauth-protected-resource/mcp`)
    // routes without a scope requirement accept it
    expect((await call('GET', '/v1/runs', noMcp)).status).toBe(200)
    // stepping up fixes it
    const all = await kc.token('alice', { resource: mcp(), scopes: ['mcp', 'extra', 'gatehouse:admin'] })
    expect((await call('GET', '/v1/admin/keys', all)).status).toBe(200)
  })

  it('an issuer with requireScopes: false is not scope-checked', async () => {
    const boss = await solo.token('boss', { resource: mcp(), scopes: [] })
    expect(String(decodeJwt(boss).scope ?? '')).not.toMatch(/mcp|gatehouse/)
    expect((await call('POST', '/mcp', boss, INITIALIZE)).status).toBe(200)
    expect((await call('GET', '/v1/admin/keys', boss)).status).toBe(200)
  })

  it('API keys with scopes are limited to them; keys without scopes only by their role', async () => {
    const scoped = await gw.api('POST', '/v1/admin/keys', { role: 'admin', scopes: ['mcp'] })
    expect(scoped.status).toBe(201)
    expect(scoped.body.scopes).toEqual(['mcp'])
    expect((await call('POST', '/mcp', scoped.body.key, INITIALIZE)).status).toBe(200)
    const r = await call('GET', '/v1/admin/keys', scoped.body.key)
    expect(r.status).toBe(403)
    expect(challenge(r.headers.get('www-authenticate')).error).toBe('insufficient_scope')
    expect((await call('GET', '/v1/admin/keys', ADMIN_KEY)).status).toBe(200)
    const bad = await gw.api('POST', '/v1/admin/keys', { role: 'admin', scopes: ['has space'] })
    expect(bad.status).toBe(400)
  })
})

describe('inbound tokens are never forwarded upstream', () => {
  it('an upstream sees neither the user token nor the API key, directly or through an agent run', async () => {
    const t = await kc.token('alice', { resource: mcp() })
    const key = (await gw.api('POST', '/v1/admin/keys', { role: 'member', tenant: 'acme' })).body
      .key as string
    for (const cred of [t, key]) {
      const c = await gw.client({ key: cred })
      const res = await eventually(async () => {
        const r = await c.callTool({ name: 'up__whoami', arguments: {} })
        return r.isError ? undefined : r
      })
      const seen = JSON.parse(textOf(res))
      expect(seen.authorization).toBeNull()
      expect(JSON.stringify(seen)).not.toContain(cred)
      expect(seen.traceparent).toMatch(/^00-/)
    }
    // an agent acting for the user calls the same tool
    const run = await call('POST', '/v1/runs', t, {
      agent: 'flex',
      input: { mode: 'tool', tool: 'up__whoami' },
    })
    expect(run.status).toBe(201)
    const done = await call('GET', `/v1/runs/${run.body.id}/wait?timeout=20`, t)
    expect(done.body.status).toBe('succeeded')
    const seen = JSON.parse(textOf(done.body.output))
    expect(seen.authorization).toBeNull()
    expect(JSON.stringify(done.body)).not.toContain(t)
  })
})

describe('failed authentication: rate limited per source and audited', () => {
  let lim: TestGateway
  beforeAll(async () => {
    lim = await startTestGateway({
      config: {
        authFailureLimit: { burst: 3, perMinute: 6 },
        oidc: { issuers: [{ issuer: kc.issuer, id: 'kc', tenantClaim: 'tenant' }] },
      },
    })
  })
  afterAll(async () => lim?.close())

  const get = (token: string | undefined, headers: Record<string, string> = {}) =>
    fetch(lim.url + '/v1/runs', { headers: { ...(token ? bearer(token) : {}), ...headers } })

  it('after the burst a source gets 429 with Retry-After; known-good credentials keep working; each failure is audited without the token', async () => {
    const goodKey = (await lim.api('POST', '/v1/admin/keys', { role: 'member' })).body.key as string
    const fresh = (await lim.api('POST', '/v1/admin/keys', { role: 'member' })).body.key as string
    expect((await get(goodKey)).status).toBe(200) // cached from here on
    // requests without credentials are the start of an OAuth flow: not counted
    for (let i = 0; i < 5; i++) expect((await get(undefined)).status).toBe(401)
    const secrets = ['gk_wrong_1_' + randomBytes(8).toString('hex'), 'gk_wrong_2_x', 'a.b.c']
    for (const s of secrets) expect((await get(s)).status).toBe(401)
    const limited = await get('gk_wrong_4')
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(((await limited.json()) as any).error.code).toBe('rate_limited')
    // a valid token this process has already accepted still works; an unseen one is not even tried
    expect((await get(goodKey)).status).toBe(200)
    expect((await get(fresh)).status).toBe(429)
    // the operator key (used and cached by the setup above) still works too
    const audit = await eventually(async () => {
      const r = await lim.api('GET', '/v1/audit?tenant=_gateway&limit=100')
      return r.body.items.length >= 4 ? r.body.items : undefined
    })
    const failures = audit.filter((e: { action: string }) => e.action === 'auth.failure')
    expect(failures).toHaveLength(3)
    for (const e of failures) {
      expect(e).toMatchObject({
        principal: 'source:127.0.0.1',
        principalKind: 'anonymous',
        outcome: 'denied',
      })
      expect(e.target).toBe('GET /v1/runs')
    }
    expect(failures.map((e: { errorCode: string }) => e.errorCode).sort()).toEqual([
      'malformed',
      'unknown_key',
      'unknown_key',
    ])
    expect(audit.filter((e: { action: string }) => e.action === 'auth.rate_limited')).toHaveLength(1)
    const text = JSON.stringify(audit)
    for (const s of secrets) expect(text).not.toContain(s)
    // another tenant's audit log shows none of it
    expect(
      (await lim.api('GET', '/v1/audit?limit=500')).body.items.some((e: { action: string }) =>
        e.action.startsWith('auth.'),
      ),
    ).toBe(false)
  })

  it('with trustProxy the source is the last X-Forwarded-For hop', async () => {
    const proxied = await startTestGateway({
      config: { authFailureLimit: { burst: 1, perMinute: 1 }, trustProxy: true },
    })
    try {
      const at = (ip: string) =>
        fetch(proxied.url + '/v1/runs', {
          headers: { ...bearer('gk_bad'), 'x-forwarded-for': `10.9.9.9, ${ip}` },
        })
      expect((await at('203.0.113.1')).status).toBe(401)
      expect((await at('203.0.113.1')).status).toBe(429)
      expect((await at('203.0.113.2')).status).toBe(401)
    } finally {
      await proxied.close()
    }
  })
})
