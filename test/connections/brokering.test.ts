import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import { openEnvelope, connectionAad } from '../../src/vault/envelope.js'
import { eventually, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import {
  callTool as callToolAs,
  connectThroughTool,
  connectUrlOf,
  finishFlow,
  startBrokeringPeers,
  startFlow as startFlowAt,
  whoami as whoamiAs,
} from '../helpers/connections.js'
import type { TestOAuthProvider } from '../helpers/oauth-provider.js'
import { agentManifests } from '../runs/manifests.js'

/**
 * Token brokering end to end (docs/connections.md): a real OAuth provider (oidc-provider) on
 * loopback, an upstream MCP server that requires its bearer tokens and answers with the identity
 * it saw, and the gateway between them. Users in two tenants connect their own accounts through
 * the real connect flow and act as themselves upstream.
 */

const SECRET = 'gh-upstream-client-secret-9f8e7d'
process.env.GH_TEST_UP_SECRET = SECRET

interface Upstream {
  url: string
  seen: {
    tokens: Set<string>
    subjects: Map<string, string>
    calls: string[]
    rejected: number
    denied: Set<string>
  }
  sessionSubjects(): string[]
  close(): Promise<void>
}

let provider: TestOAuthProvider
let upstream: Upstream
let gw: TestGateway
const logs = new PassThrough()
let logText = ''
logs.on('data', (d) => (logText += String(d)))
const keys: Record<string, string> = {}
let refreshGrants = 0

const connector = (tenant: string, name = 'up', extra = '') => `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: ${name}, tenant: ${tenant} }
spec:
  transport: http
  url: ${upstream.url}
  auth:
    type: oauth2
    client_id: gatehouse
    client_secret: { env: GH_TEST_UP_SECRET }
    scopes: [mcp:read]
${extra}`

async function newKey(tenant: string, role = 'member'): Promise<string> {
  const r = await gw.api('POST', '/v1/admin/keys', { tenant, role })
  expect(r.status).toBe(201)
  return r.body.key as string
}

const callTool = (key: string, name: string, g: TestGateway = gw) => callToolAs(g, key, name)
const startFlow = (url: string, user: string, headers: Record<string, string> = {}) =>
  startFlowAt(provider, url, user, headers)
const connect = (key: string, tool: string, user: string) => connectThroughTool(gw, provider, key, tool, user)

const whoami = (key: string, g: TestGateway = gw) => whoamiAs(g, key)

beforeAll(async () => {
  gw = await startTestGateway({
    config: { allowPrivateNetwork: true, tokenRefreshSkewMs: 0, logLevel: 'debug' },
    logger: createLogger('debug', logs),
  })
  ;({ provider, upstream } = await startBrokeringPeers<Upstream>({
    secret: SECRET,
    gatewayUrl: gw.url,
    onRefresh: () => refreshGrants++,
  }))
  for (const [name, tenant] of [
    ['alice', 'acme'],
    ['bob', 'acme'],
    ['carol', 'acme'],
    ['erin', 'globex'],
  ] as const)
    keys[name] = await newKey(tenant)
  keys.acmeAdmin = await newKey('acme', 'admin')
  await gw.apply(connector('acme') + '---' + connector('globex') + '---' + agentManifests('acme'))
}, 60_000)

const cleanups: (() => void)[] = []
afterAll(async () => {
  await gw?.close()
  for (const c of cleanups) c()
  await upstream?.close()
  await provider?.close()
})

describe('token brokering: users connect once and act as themselves upstream', () => {
  it('before anyone connected, the connector lists a stand-in tool whose call gives a personal connect link', async () => {
    const c = await gw.client({ key: keys.alice })
    const tools = (await c.listTools()).tools.map((t) => t.name)
    await c.close()
    expect(tools).toContain('up__connect')
    const r = await callTool(keys.alice!, 'up__connect')
    expect(r.isError).toBe(true)
    expect(connectUrlOf(r)).toMatch(/\/oauth\/connect\/up\?ticket=gh1\./)
    expect(upstream.seen.tokens.size).toBe(0)
  })

  it('two users in two tenants connect through the provider and each acts as themselves', async () => {
    await connect(keys.alice!, 'up__connect', 'alice-up')
    await connect(keys.erin!, 'up__connect', 'erin-up')
    // The connector's real tools replace the stand-in once someone has connected.
    await eventually(async () => {
      const c = await gw.client({ key: keys.alice })
      const names = (await c.listTools()).tools.map((t) => t.name)
      await c.close()
      return names.includes('up__whoami') && !names.includes('up__connect')
    })
    expect((await whoami(keys.alice!)).sub).toBe('alice-up')
    expect((await whoami(keys.erin!)).sub).toBe('erin-up')
    const me = await whoami(keys.alice!)
    expect(me.aud).toBe(upstream.url) // RFC 8707: the token is for this upstream only
    // One upstream session per user: sessions never mix two users' tokens.
    expect(new Set(upstream.sessionSubjects())).toEqual(new Set(['alice-up', 'erin-up']))
    // Metadata only, and each member sees their own.
    const mine = await gw.api('GET', '/v1/connections', undefined, keys.alice)
    expect(mine.body.items).toHaveLength(1)
    expect(mine.body.items[0]).toMatchObject({
      connector: 'up',
      scopes: expect.arrayContaining(['mcp:read']),
    })
    expect((await gw.api('GET', '/v1/connections', undefined, keys.bob)).body.items).toHaveLength(0)
    const erins = await gw.api('GET', '/v1/connections', undefined, keys.erin)
    expect(erins.body.items).toHaveLength(1)
    // Another tenant's connection is not found, not forbidden.
    expect(
      (await gw.api('GET', `/v1/connections/${erins.body.items[0].id}`, undefined, keys.acmeAdmin)).status,
    ).toBe(404)
    // The tenant admin sees the tenant's.
    expect((await gw.api('GET', '/v1/connections', undefined, keys.acmeAdmin)).body.items).toHaveLength(1)
  })

  it('a client that declared URL elicitation gets -32042 with the connect link; after connecting, the retried call succeeds', async () => {
    const c = await gw.client({ key: keys.carol, capabilities: { elicitation: { url: {} } } })
    const err = await c.callTool({ name: 'up__whoami', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e as { code: number; data: any },
    )
    expect(err?.code).toBe(-32042)
    const el = err!.data.elicitations[0]
    expect(el).toMatchObject({ mode: 'url', url: expect.stringContaining('/oauth/connect/up?ticket=') })
    expect(el.elicitationId).toEqual(expect.any(String))
    const { callback, cookie } = await startFlow(el.url, 'carol-up')
    expect((await finishFlow(callback, { cookie })).status).toBe(200)
    const again = await c.callTool({ name: 'up__whoami', arguments: {} })
    expect(JSON.parse(textOf(again)).sub).toBe('carol-up')
    await c.close()
  })

  it('step-up: an upstream 403 insufficient_scope, or a tool_scopes entry, asks to reconnect granting more; then the call succeeds', async () => {
    // carol connected with mcp:read only; the upstream wants mcp:write for this tool.
    const r = await callTool(keys.carol!, 'up__needs_write')
    expect(r.isError, textOf(r)).toBe(true)
    expect(textOf(r)).toMatch(/needs more access than your connection grants \(mcp:read mcp:write\)/)
    const { callback, cookie } = await startFlow(connectUrlOf(r), 'carol-up')
    expect((await finishFlow(callback, { cookie })).status).toBe(200)
    expect(textOf(await callTool(keys.carol!, 'up__needs_write'))).toBe('write ok for carol-up')
    const mine = await gw.api('GET', '/v1/connections', undefined, keys.carol)
    expect(mine.body.items[0].scopes).toEqual(expect.arrayContaining(['mcp:read', 'mcp:write']))
    // A connector that declares a tool's scopes refuses before calling upstream.
    await gw.apply(connector('acme', 'ups', '    tool_scopes: { whoami: [repo] }'))
    await connect(keys.carol!, 'ups__connect', 'carol-up')
    const calls = upstream.seen.calls.length
    const refused = await callTool(keys.carol!, 'ups__whoami')
    expect(textOf(refused)).toMatch(/this tool needs ups access your connection does not grant \(repo\)/)
    expect(connectUrlOf(refused)).toContain('/oauth/connect/ups?ticket=')
    expect(upstream.seen.calls.length).toBe(calls)
  })

  it('A2A: an agent run without the caller’s connection is auth-required; after connecting, a new message succeeds', async () => {
    const bobKey = keys.bob!
    const send = async () => {
      const res = await fetch(`${gw.url}/a2a/flex`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${bobKey}`,
          'content-type': 'application/json',
          'a2a-version': '1.0',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'SendMessage',
          params: {
            message: {
              messageId: crypto.randomUUID(),
              role: 'ROLE_USER',
              parts: [{ data: { mode: 'tool', tool: 'up__whoami' } }],
            },
            configuration: { blocking: true },
          },
        }),
      })
      return (await res.json()) as any
    }
    const first = await send()
    const task = first.result?.task ?? first.result
    expect(JSON.stringify(task.status)).toMatch(/AUTH_REQUIRED|auth-required/)
    expect(JSON.stringify(task)).toContain('/oauth/connect/up?ticket=')
    const url = /(http:\/\/[^\s"\\]+\/oauth\/connect\/up\?ticket=[^\s"\\]+)/.exec(JSON.stringify(task))![1]!
    const { callback, cookie } = await startFlow(url, 'bob-up')
    expect((await finishFlow(callback, { cookie })).status).toBe(200)
    const second = await send()
    const done = second.result?.task ?? second.result
    expect(JSON.stringify(done.status)).toMatch(/COMPLETED|completed/)
    expect(JSON.stringify(done)).toContain('bob-up')
  })
})

describe('connect-flow refusals store nothing', () => {
  const count = async (key: string) =>
    (await gw.api('GET', '/v1/connections', undefined, key)).body.items.length as number

  it('a tampered state, a replayed callback, another user’s completion and a missing browser cookie are refused', async () => {
    const dave = await newKey('acme')
    const url = connectUrlOf(await callTool(dave, 'up__whoami'))
    // Tampered state: no such flow.
    const a = await startFlow(url, 'dave-up')
    const tampered = new URL(a.callback)
    const st = tampered.searchParams.get('state')!
    tampered.searchParams.set('state', (st[0] === 'A' ? 'B' : 'A') + st.slice(1))
    const t1 = await finishFlow(tampered, { cookie: a.cookie })
    expect(t1.status).toBe(400)
    expect(t1.body.error.message).toMatch(/unknown, expired or already used/)
    // Completed by another user (their gateway credentials), even with the right browser cookie.
    const other = await finishFlow(a.callback, { cookie: a.cookie, authorization: `Bearer ${keys.erin}` })
    expect(other.status).toBe(403)
    expect(other.body.error.message).toMatch(/started by another user/)
    // That consumed the state: the genuine browser's retry is a replay now.
    expect((await finishFlow(a.callback, { cookie: a.cookie })).status).toBe(400)
    // Without the browser binding cookie.
    const b = await startFlow(url, 'dave-up')
    const noCookie = await finishFlow(b.callback, {})
    expect(noCookie.status).toBe(403)
    expect(noCookie.body.error.message).toMatch(/did not start this connection/)
    expect(await count(dave)).toBe(0)
    // The genuine flow works, once; its replay is refused.
    const c = await startFlow(url, 'dave-up')
    expect((await finishFlow(c.callback, { cookie: c.cookie })).status).toBe(200)
    const replay = await finishFlow(c.callback, { cookie: c.cookie })
    expect(replay.status).toBe(400)
    expect(await count(dave)).toBe(1)
    // An altered connect link is refused before anything starts.
    const bad = await fetch(
      url.replace(/ticket=gh1\.([^.]+)\.(.)/, (_m, k, ch) => `ticket=gh1.${k}.${ch === 'A' ? 'B' : 'A'}`),
      {
        redirect: 'manual',
      },
    )
    expect(bad.status).toBe(401)
  })

  it('a token endpoint that answers garbage: a clear error naming it, and nothing stored', async () => {
    const http = await import('node:http')
    const junk = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>oops</html>'),
    )
    await new Promise<void>((r) => junk.listen(0, '127.0.0.1', r))
    const junkUrl = `http://127.0.0.1:${(junk.address() as { port: number }).port}/token`
    try {
      await gw.apply(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: junk, tenant: acme }
spec:
  transport: http
  url: ${upstream.url}
  auth:
    type: oauth2
    authorization_endpoint: ${provider.issuer}/auth
    token_endpoint: ${junkUrl}
    client_id: gatehouse
    client_secret: { env: GH_TEST_UP_SECRET }
    scopes: [mcp:read]
`)
      const frank = await newKey('acme')
      const { callback, cookie } = await startFlow(`${gw.url}/oauth/connect/junk`, 'frank-up', {
        authorization: `Bearer ${frank}`,
      })
      const done = await finishFlow(callback, { cookie, authorization: `Bearer ${frank}` })
      expect(done.status).toBeGreaterThanOrEqual(400)
      expect(done.body.error.message).toContain(junkUrl.replace(/\/token$/, ''))
      expect(await count(frank)).toBe(0)
    } finally {
      junk.close()
    }
  })
})

describe('tokens in use', () => {
  it('concurrent calls across an expiry, in two gateway processes on one store, cause exactly one refresh', async () => {
    const store = gw.gw.store
    const acme = systemContext('acme')
    const rec = (await gw.api('GET', '/v1/connections', undefined, keys.alice)).body.items[0]
    expect(rec).toBeDefined()
    const gw2 = await startTestGateway({
      config: { dataDir: gw.dataDir, allowPrivateNetwork: true, tokenRefreshSkewMs: 0 },
    })
    try {
      const before = refreshGrants
      const alicesTokens = () => [...upstream.seen.subjects.values()].filter((s) => s === 'alice-up').length
      const tokensBefore = alicesTokens()
      // The access token expires now.
      const cur = await store.connections.get(acme, rec.id)
      await store.connections.update(rec.id, cur!.version, {
        sealed: cur!.sealed,
        expiresAt: new Date(Date.now() - 1000).toISOString(),
      })
      const results = await Promise.all(
        Array.from({ length: 10 }, (_v, i) => whoami(keys.alice!, i % 2 ? gw2 : gw)),
      )
      expect(results.every((r) => r.sub === 'alice-up')).toBe(true)
      expect(refreshGrants - before).toBe(1)
      expect(alicesTokens()).toBe(tokensBefore + 1) // every call used the one new token
    } finally {
      await gw2.close()
    }
  })

  it('an upstream 401 refreshes once and retries with the new token', async () => {
    const before = refreshGrants
    const tokensBefore = new Set(upstream.seen.tokens)
    // The upstream stops accepting every token it has seen (as if the provider revoked them).
    for (const t of tokensBefore) upstream.seen.denied.add(t)
    expect((await whoami(keys.alice!)).sub).toBe('alice-up')
    expect(refreshGrants - before).toBe(1)
    expect([...upstream.seen.tokens].filter((t) => !tokensBefore.has(t))).toHaveLength(1)
  })

  it('a gateway restart keeps connections', async () => {
    const connectionId = (await gw.api('GET', '/v1/connections', undefined, keys.alice)).body.items[0].id
    const old = gw
    await old.gw.close() // the process stops; its data directory stays
    gw = await startTestGateway({
      config: { dataDir: old.dataDir, allowPrivateNetwork: true, tokenRefreshSkewMs: 0 },
      logger: createLogger('debug', logs),
    })
    cleanups.push(() => rmSync(old.dataDir, { recursive: true, force: true }))
    expect((await whoami(keys.alice!)).sub).toBe('alice-up')
    // The same connection, not a new one.
    expect((await gw.api('GET', '/v1/connections', undefined, keys.alice)).body.items[0].id).toBe(
      connectionId,
    )
  })

  it('disconnecting revokes the refresh token at the provider and deletes; the next call asks to connect again', async () => {
    expect((await whoami(keys.erin!)).sub).toBe('erin-up')
    const list = await gw.api('GET', '/v1/connections', undefined, keys.erin)
    const rec = list.body.items[0]
    const stored = await gw.gw.store.connections.get(systemContext('globex'), rec.id)
    const tokens = JSON.parse(
      await openEnvelope(gw.gw.keyProvider, stored!.sealed, connectionAad(stored!)),
    ) as {
      r?: string
    }
    expect(tokens.r).toEqual(expect.any(String))
    const del = await gw.api('DELETE', `/v1/connections/${rec.id}`, undefined, keys.erin)
    expect(del.status).toBe(200)
    expect(del.body).toEqual({ deleted: rec.id, revoked: true })
    // The provider no longer honours the refresh token.
    const res = await fetch(`${provider.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`gatehouse:${SECRET}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.r! }).toString(),
    })
    expect(((await res.json()) as { error?: string }).error).toBe('invalid_grant')
    // The tool stays listed (last known list); its call asks to connect again.
    const r = await callTool(keys.erin!, 'up__whoami')
    expect(r.isError).toBe(true)
    expect(connectUrlOf(r)).toContain('/oauth/connect/up?ticket=')
  })

  it('no token or client secret appears in the database file, logs, traces, audit rows or answers', async () => {
    await (gw.gw as any).store.ping()
    const secrets = [...upstream.seen.tokens, SECRET]
    expect(secrets.length).toBeGreaterThan(3)
    const db = join(gw.dataDir, 'gatehouse.db')
    const bytes = [db, `${db}-wal`]
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'))
      .join('\n')
    const answers = [
      JSON.stringify((await gw.api('GET', '/v1/audit?limit=1000', undefined, keys.acmeAdmin)).body),
      JSON.stringify((await gw.api('GET', '/v1/traces?limit=1000', undefined, keys.acmeAdmin)).body),
      JSON.stringify((await gw.api('GET', '/v1/connections', undefined, keys.acmeAdmin)).body),
      JSON.stringify((await gw.api('GET', '/v1/admin/connectors/up', undefined, keys.acmeAdmin)).body),
    ].join('\n')
    expect(logText).toContain('token refreshed') // debug logs were captured
    for (const s of secrets) {
      const head = s.slice(0, 40)
      expect(bytes.includes(head), 'database').toBe(false)
      expect(logText.includes(head), 'logs').toBe(false)
      expect(answers.includes(head), 'answers').toBe(false)
    }
  })
})
