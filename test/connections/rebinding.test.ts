import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { connectionAad, openEnvelope, sealEnvelope } from '../../src/vault/envelope.js'
import { eventually, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import {
  callTool,
  connectThroughTool,
  connectUrlOf,
  startBrokeringPeers,
  whoami,
} from '../helpers/connections.js'
import type { TestOAuthProvider } from '../helpers/oauth-provider.js'

/**
 * A user's connection belongs to the upstream and the authorization server it was made with
 * (docs/connections.md). When an admin re-applies the connector pointing at another upstream or
 * another issuer, the stored tokens are not sent there (no token passthrough to an audience they
 * were not issued for): calls answer connection_required with a connect link until the user
 * connects again, and the connection is kept (pointing the connector back makes it work again).
 */

const SECRET = 'gh-rebinding-client-secret-41c3'
process.env.GH_TEST_REBIND_SECRET = SECRET

interface Upstream {
  url: string
  seen: { tokens: Set<string> }
  close(): Promise<void>
}

/** Every request a loopback server received: path, Authorization header and body. */
interface Recorder {
  base: string
  requests: { path: string; authorization?: string; body: string }[]
  close(): Promise<void>
}

/**
 * A server that records everything sent to it. `mcp`: an MCP upstream protected by `issuer`
 * (RFC 9728 metadata naming it; every MCP request answered 401). `as`: an authorization server
 * publishing RFC 8414 metadata whose token endpoint refuses every grant.
 */
async function startRecorder(kind: 'mcp' | 'as', issuer = ''): Promise<Recorder> {
  const requests: Recorder['requests'] = []
  let base = ''
  const json = (res: import('node:http').ServerResponse, status: number, body: unknown, h = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...h }).end(JSON.stringify(body))
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    requests.push({
      path: req.url ?? '',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      body,
    })
    if (kind === 'mcp') {
      if (req.url === '/.well-known/oauth-protected-resource/mcp')
        return json(res, 200, { resource: `${base}/mcp`, authorization_servers: [issuer] })
      return json(
        res,
        401,
        { error: 'invalid_token' },
        {
          'www-authenticate': `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
        },
      )
    }
    if (req.url === '/.well-known/oauth-authorization-server')
      return json(res, 200, {
        issuer: base,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        code_challenge_methods_supported: ['S256'],
      })
    if (req.url === '/token') return json(res, 400, { error: 'invalid_grant' })
    return json(res, 404, { error: 'not_found' })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return {
    base,
    requests,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}

let gw: TestGateway
let provider: TestOAuthProvider
let upstream: Upstream
const recorders: Recorder[] = []
let alice = ''

const connector = (name: string, url: string, extra = '') => `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: ${name}, tenant: acme }
spec:
  transport: http
  url: ${url}
  auth:
    type: oauth2
    client_id: gatehouse
    client_secret: { env: GH_TEST_REBIND_SECRET }
    scopes: [mcp:read]
${extra}`

/** Connects alice to `name` through its stand-in tool and waits for the real tools. */
async function connectAlice(name: string): Promise<void> {
  await connectThroughTool(gw, provider, alice, `${name}__connect`, 'alice-up')
  await eventually(async () => {
    const c = await gw.client({ key: alice })
    const names = (await c.listTools()).tools.map((t) => t.name)
    await c.close()
    return names.includes(`${name}__whoami`)
  })
}

/** Every Authorization header and body a recorder saw, as one string. */
const sent = (r: Recorder) => r.requests.map((q) => `${q.authorization ?? ''} ${q.body}`).join('\n')

beforeAll(async () => {
  gw = await startTestGateway({ config: { allowPrivateNetwork: true, tokenRefreshSkewMs: 0 } })
  ;({ provider, upstream } = await startBrokeringPeers<Upstream>({
    secret: SECRET,
    gatewayUrl: gw.url,
    onRefresh: () => {},
  }))
  const r = await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'member' })
  expect(r.status).toBe(201)
  alice = r.body.key as string
}, 60_000)

afterAll(async () => {
  await gw?.close()
  for (const r of recorders) await r.close()
  await upstream?.close()
  await provider?.close()
})

describe('a connector re-applied to point elsewhere does not get its users’ tokens', () => {
  it('another upstream url: never sent the token; calls answer connection_required; pointing back works again', async () => {
    await gw.apply(connector('up', upstream.url))
    await connectAlice('up')
    expect((await whoami(gw, alice)).sub).toBe('alice-up')
    const tokens = [...upstream.seen.tokens]
    expect(tokens.length).toBeGreaterThan(0)

    const other = await startRecorder('mcp', provider.issuer)
    recorders.push(other)
    await gw.apply(connector('up', `${other.base}/mcp`))
    const c = await gw.client({ key: alice })
    const names = (await c.listTools()).tools.map((t) => t.name)
    await c.close()
    // Listing with the tenant's connections is a use of their tokens too: none is usable here.
    expect(names).toContain('up__connect')
    const r = await callTool(gw, alice, 'up__connect')
    const seen = sent(other)
    for (const t of tokens)
      expect(seen.includes(t.slice(0, 40)), 'the other upstream saw the token').toBe(false)
    expect(other.requests.filter((q) => q.authorization).map((q) => q.path)).toEqual([])
    expect(r.isError, textOf(r)).toBe(true)
    expect(textOf(r)).toMatch(/connect again/)
    expect(connectUrlOf(r)).toContain('/oauth/connect/up?ticket=')

    // A mismatch does not delete the connection: pointing the connector back makes it work again.
    expect((await gw.api('GET', '/v1/connections', undefined, alice)).body.items).toHaveLength(1)
    await gw.apply(connector('up', upstream.url))
    await eventually(async () => (await whoami(gw, alice)).sub === 'alice-up')
  })

  it('another issuer: a refresh never sends the refresh token (nor the client secret) to it', async () => {
    await gw.apply(connector('iss', upstream.url, `    issuer: ${provider.issuer}`))
    await connectAlice('iss')
    expect(textOf(await callTool(gw, alice, 'iss__whoami'))).toContain('alice-up')

    const as = await startRecorder('as')
    recorders.push(as)
    await gw.apply(connector('iss', upstream.url, `    issuer: ${as.base}`))
    // The access token has expired: using it would mean refreshing at the (new) issuer.
    const item = (await gw.api('GET', '/v1/connections', undefined, alice)).body.items.find(
      (i: { connector: string }) => i.connector === 'iss',
    )
    const cur = await gw.gw.store.connections.get(systemContext('acme'), item.id)
    await gw.gw.store.connections.update(cur!.id, cur!.version, {
      sealed: cur!.sealed,
      expiresAt: new Date(Date.now() - 1000).toISOString(),
    })
    const r = await callTool(gw, alice, 'iss__connect')
    expect(r.isError, textOf(r)).toBe(true)
    expect(connectUrlOf(r)).toContain('/oauth/connect/iss?ticket=')
    expect(as.requests.filter((q) => q.path.startsWith('/token'))).toEqual([])
    expect(sent(as)).not.toContain(SECRET)
    // Kept, not deleted.
    expect(await gw.gw.store.connections.get(systemContext('acme'), item.id)).toBeDefined()
  })

  it('a connection that recorded no upstream (made before it was recorded): the issuer the connector resolves now decides', async () => {
    await gw.apply(connector('old', upstream.url))
    await connectAlice('old')
    // Make alice's connection look like one sealed before the upstream was recorded.
    const item = (await gw.api('GET', '/v1/connections', undefined, alice)).body.items.find(
      (i: { connector: string }) => i.connector === 'old',
    )
    const cur = (await gw.gw.store.connections.get(systemContext('acme'), item.id))!
    const tokens = JSON.parse(await openEnvelope(gw.gw.keyProvider, cur.sealed, connectionAad(cur))) as {
      a: string
      u?: string
    }
    expect(tokens.u).toBe(upstream.url)
    delete tokens.u
    const sealed = await sealEnvelope(gw.gw.keyProvider, JSON.stringify(tokens), connectionAad(cur))
    expect(await gw.gw.store.connections.update(cur.id, cur.version, { sealed })).toBeDefined()
    // Same upstream, same (discovered) issuer: it keeps working.
    expect(textOf(await callTool(gw, alice, 'old__whoami'))).toContain('alice-up')

    // Moved to an upstream whose resource metadata names another authorization server.
    const as = await startRecorder('as')
    const other = await startRecorder('mcp', as.base)
    recorders.push(as, other)
    await gw.apply(connector('old', `${other.base}/mcp`))
    const r = await callTool(gw, alice, 'old__connect')
    expect(other.requests.filter((q) => q.authorization).map((q) => q.path)).toEqual([])
    expect(sent(other)).not.toContain(tokens.a.slice(0, 40))
    expect(as.requests.filter((q) => q.path.startsWith('/token'))).toEqual([])
    expect(r.isError, textOf(r)).toBe(true)
    expect(connectUrlOf(r)).toContain('/oauth/connect/old?ticket=')
  })
})
