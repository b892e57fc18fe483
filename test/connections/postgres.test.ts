import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { connectThroughTool, startBrokeringPeers, whoami as whoamiAs } from '../helpers/connections.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import type { TestOAuthProvider } from '../helpers/oauth-provider.js'
import { usePostgres } from '../helpers/postgres.js'

/**
 * Token brokering on two replicas of one PostgreSQL: a connection made through one replica is
 * used by the other, and calls on both across an expiry refresh exactly once (the refresh lock
 * is a compare-and-swap on the row's version, shared by the replicas).
 */

const SECRET = 'gh-upstream-client-secret-pg-2f1e'
process.env.GH_TEST_UP_SECRET_PG = SECRET
// Replicas share the master key (docs/operations.md): each unwraps what the other sealed.
process.env.GATEHOUSE_MASTER_KEY = randomBytes(32).toString('base64')

const pgsql = usePostgres()
let a: TestGateway
let b: TestGateway
let provider: TestOAuthProvider
let upstream: { url: string; seen: { subjects: Map<string, string> }; close(): Promise<void> }
let refreshGrants = 0
let key = ''

const whoami = (g: TestGateway) => whoamiAs(g, key)

beforeAll(async () => {
  if (!pgsql.ready()) return // every test fails with the start-up error instead
  const config = { databaseUrl: pgsql.url(), allowPrivateNetwork: true, tokenRefreshSkewMs: 0 }
  a = await startTestGateway({ config })
  ;({ provider, upstream } = await startBrokeringPeers<typeof upstream>({
    secret: SECRET,
    gatewayUrl: a.url,
    onRefresh: () => refreshGrants++,
  }))
  key = (await a.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'member' })).body.key
  await a.apply(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: up, tenant: acme }
spec:
  transport: http
  url: ${upstream.url}
  auth: { type: oauth2, client_id: gatehouse, client_secret: { env: GH_TEST_UP_SECRET_PG }, scopes: [mcp:read] }
`)
  b = await startTestGateway({ config })
}, 60_000)

afterAll(async () => {
  await a?.close()
  await b?.close()
  await upstream?.close()
  await provider?.close()
})

describe('token brokering on two PostgreSQL replicas', () => {
  it('a connection made on one replica works on the other; calls on both across an expiry refresh once', async () => {
    await connectThroughTool(a, provider, key, 'up__connect', 'alice-up')
    expect((await whoami(b)).sub).toBe('alice-up')
    const rec = (await b.api('GET', '/v1/connections', undefined, key)).body.items[0]
    const store = a.gw.store
    const cur = await store.connections.get(systemContext('acme'), rec.id)
    await store.connections.update(rec.id, cur!.version, {
      sealed: cur!.sealed,
      expiresAt: new Date(Date.now() - 1000).toISOString(),
    })
    const alices = () => [...upstream.seen.subjects.values()].filter((s) => s === 'alice-up').length
    const before = { grants: refreshGrants, tokens: alices() }
    const results = await Promise.all(Array.from({ length: 12 }, (_v, i) => whoami(i % 2 ? b : a)))
    expect(results.every((r) => r.sub === 'alice-up')).toBe(true)
    expect(refreshGrants - before.grants).toBe(1)
    expect(alices() - before.tokens).toBe(1)
  })
})
