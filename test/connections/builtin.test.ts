import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { start as startGithubApi } from '../fixtures/github-api.mjs'
// @ts-expect-error — plain JS fixture
import { start as startGithubOAuth } from '../fixtures/github-oauth.mjs'

/**
 * The bundled GitHub connector through the whole gateway: two users connect their own GitHub
 * accounts (a loopback fake of GitHub's OAuth web flow, with its quirks) and the tool layer
 * calls the GitHub REST API (a loopback fake) with each caller's own token.
 */

const SECRET = 'gh-oauth-app-secret-6b5a4c'
process.env.GH_TEST_APP_SECRET = SECRET

type Api = Awaited<ReturnType<typeof startGithubApi>>
interface OAuthFake {
  url: string
  state: { tokens: Map<string, string>; requests: { method: string; path: string }[] }
  close(): Promise<void>
}

let gw: TestGateway
let api: Api
let oauth: OAuthFake
const keys: Record<string, string> = {}

/** GitHub's API accepts what its OAuth server issued: share the fake OAuth server's tokens with the API fake. */
function syncTokens(): void {
  const tokens = api.state.tokens as Record<string, { login: string; scopes: string[] }>
  for (const [token, login] of oauth.state.tokens) tokens[token] ??= { login, scopes: ['repo', 'read:user'] }
}

async function call(key: string, name: string, args: Record<string, unknown> = {}) {
  syncTokens()
  const c = await gw.client({ key })
  try {
    return await c.callTool({ name, arguments: args })
  } finally {
    await c.close()
  }
}

/** The connect flow as the user's browser: the GitHub fake approves as `login`. */
async function connect(key: string, login: string): Promise<void> {
  const first = await call(key, 'github__get_me')
  expect(first.isError).toBe(true)
  const link = /(http:\/\/\S+\/oauth\/connect\/github\?ticket=\S+)/.exec(textOf(first))![1]!
  const start = await fetch(link, { redirect: 'manual' })
  expect(start.status).toBe(302)
  const cookie = start.headers.getSetCookie()[0]!.split(';')[0]!
  const authorize = new URL(start.headers.get('location')!)
  expect(authorize.pathname).toBe('/login/oauth/authorize')
  expect(authorize.searchParams.get('code_challenge_method')).toBe('S256')
  authorize.searchParams.set('login', login)
  const back = await fetch(authorize, { redirect: 'manual' })
  const callback = back.headers.get('location')!
  const done = await fetch(callback, { headers: { cookie, accept: 'application/json' } })
  expect(done.status, await done.clone().text()).toBe(200)
}

beforeAll(async () => {
  gw = await startTestGateway({ config: { allowPrivateNetwork: true } })
  api = await startGithubApi()
  oauth = (await startGithubOAuth({ clientId: 'Iv1.test', clientSecret: SECRET })) as OAuthFake
  for (const u of ['alice', 'bob']) {
    const r = await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'member' })
    keys[u] = r.body.key
  }
  await gw.apply(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: github, tenant: acme }
spec:
  transport: builtin
  builtin: github
  base_url: ${api.url}
  auth:
    type: oauth2
    provider: github
    authorization_endpoint: ${oauth.url}/login/oauth/authorize
    token_endpoint: ${oauth.url}/login/oauth/access_token
    revocation_endpoint: ${oauth.url}/applications/{client_id}/token
    client_id: Iv1.test
    client_secret: { env: GH_TEST_APP_SECRET }
    scopes: [repo, read:user]
`)
}, 30_000)

afterAll(async () => {
  await gw?.close()
  await api?.close()
  await oauth?.close()
})

describe('bundled GitHub connector with per-user OAuth', () => {
  it('lists its tools before anyone connected; each user connects and acts as their own GitHub account', async () => {
    const c = await gw.client({ key: keys.alice })
    const names = (await c.listTools()).tools.map((t) => t.name)
    await c.close()
    expect(names).toEqual(
      expect.arrayContaining(['github__get_me', 'github__create_issue', 'github__get_issue']),
    )
    await connect(keys.alice!, 'alice')
    await connect(keys.bob!, 'bob')
    const [a, b] = await Promise.all([call(keys.alice!, 'github__get_me'), call(keys.bob!, 'github__get_me')])
    expect((a.structuredContent as { login: string }).login).toBe('alice')
    expect((b.structuredContent as { login: string }).login).toBe('bob')
    // Every API request carried the caller's own token, never another's.
    const tokenOf = new Map([...oauth.state.tokens].map(([t, login]) => [login, t]))
    const me = api.state.requests.filter((r) => r.path === '/user')
    expect(me.map((r) => r.authorization).sort()).toEqual(
      [`token ${tokenOf.get('alice')}`, `token ${tokenOf.get('bob')}`].sort(),
    )
  })

  it('writes as the caller: an issue created through the gateway is authored by that user', async () => {
    const r = await call(keys.bob!, 'github__create_issue', {
      owner: 'acme',
      repo: 'widgets',
      title: 'From bob',
    })
    expect(r.isError, textOf(r)).toBeFalsy()
    const issue = r.structuredContent as { number: number; user?: string; author?: string }
    const got = await call(keys.alice!, 'github__get_issue', {
      owner: 'acme',
      repo: 'widgets',
      issue_number: issue.number,
    })
    expect(JSON.stringify(got.structuredContent)).toContain('bob')
  })

  it('a token GitHub rejects sends the user to connect again (no refresh token to try)', async () => {
    // GitHub revokes alice's token on its side.
    const tokens = api.state.tokens as Record<string, unknown>
    const aliceToken = [...oauth.state.tokens].find(([, login]) => login === 'alice')![0]
    delete tokens[aliceToken]
    oauth.state.tokens.delete(aliceToken)
    const r = await call(keys.alice!, 'github__get_me')
    expect(r.isError).toBe(true)
    expect(textOf(r)).toMatch(
      /no longer accepts your connection: reconnect: open http:\/\/\S+\/oauth\/connect\/github/,
    )
    expect(textOf(r)).not.toContain(aliceToken)
    expect((await gw.api('GET', '/v1/connections', undefined, keys.alice)).body.items).toHaveLength(0)
  })

  it('disconnecting revokes the token through GitHub’s application API', async () => {
    const mine = (await gw.api('GET', '/v1/connections', undefined, keys.bob)).body.items
    expect(mine).toHaveLength(1)
    const del = await gw.api('DELETE', `/v1/connections/${mine[0].id}`, undefined, keys.bob)
    expect(del.body).toEqual({ deleted: mine[0].id, revoked: true })
    expect(
      oauth.state.requests.some((r) => r.method === 'DELETE' && r.path === '/applications/Iv1.test/token'),
    ).toBe(true)
    expect([...oauth.state.tokens.values()]).not.toContain('bob')
  })
})
