import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OAuthClient, OAuthError, type ProviderSettings } from '../../src/oauth/index.js'
// @ts-expect-error -- a plain .mjs fixture without type declarations
import { start as startGithub } from '../fixtures/github-oauth.mjs'
// @ts-expect-error -- a plain .mjs fixture without type declarations
import { start as startSlack } from '../fixtures/slack-oauth.mjs'
import { MemoryRegistrations } from './memory-registrations.js'

const REDIRECT = 'http://127.0.0.1:9/oauth/callback'

interface Recorded {
  method: string
  path: string
  query: Record<string, string>
  headers: Record<string, string>
  body: string
}
interface Fake {
  url: string
  state: { requests: Recorded[]; tokens: Map<string, string> }
  close(): Promise<void>
}

/** The provider fakes approve at once: one redirect back to the callback. */
async function browse(url: string): Promise<URL> {
  const res = await fetch(url, { redirect: 'manual' })
  await res.body?.cancel()
  return new URL(res.headers.get('location')!)
}

async function rejection(p: Promise<unknown>): Promise<OAuthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(OAuthError)
  return err as OAuthError
}

function client(settings: ProviderSettings, mcpUrl?: string): OAuthClient {
  return new OAuthClient({
    settings,
    ...(mcpUrl ? { mcpUrl } : {}),
    redirectUri: REDIRECT,
    clientName: 'Gatehouse',
    registrations: new MemoryRegistrations(),
    allowInsecureRequests: true,
  })
}

async function connect(c: OAuthClient, state = 'st') {
  const b = await c.begin({ state })
  const callbackUrl = await browse(b.url)
  return {
    begun: b,
    callbackUrl,
    tokens: await c.finish({ callbackUrl, state, codeVerifier: b.codeVerifier, issuer: b.issuer }),
  }
}

describe('GitHub preset against a loopback fake of its OAuth wire format', () => {
  let gh: Fake
  let settings: ProviderSettings
  beforeAll(async () => {
    gh = (await startGithub({ expiring: true })) as Fake
    settings = {
      provider: 'github',
      authorizationEndpoint: `${gh.url}/login/oauth/authorize`,
      tokenEndpoint: `${gh.url}/login/oauth/access_token`,
      revocationEndpoint: `${gh.url}/applications/{client_id}/token`,
      clientId: 'Iv1.test',
      clientSecret: 'gh-secret',
      scopes: ['repo', 'read:user'],
      authorizationParams: { login: 'bob' },
    }
  })
  afterAll(() => gh?.close())

  it('authorizes, exchanges (client_secret_post, Accept: application/json) and normalizes comma scopes', async () => {
    const c = client(settings, 'https://api.githubcopilot.com/mcp/')
    const { begun, tokens } = await connect(c)
    const url = new URL(begun.url)
    expect(url.pathname).toBe('/login/oauth/authorize')
    expect(url.searchParams.get('scope')).toBe('repo read:user')
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.has('resource')).toBe(false) // GitHub does not do RFC 8707
    expect(begun.resource).toBeUndefined()
    expect(tokens.accessToken).toMatch(/^gho_bob_/)
    expect(tokens).toMatchObject({ tokenType: 'Bearer', scopes: ['repo', 'read:user'] })
    expect(tokens.refreshToken).toMatch(/^ghr_/)
    const tokenReq = gh.state.requests.findLast((r) => r.path === '/login/oauth/access_token')!
    expect(tokenReq.headers.accept).toContain('application/json')
    expect(new URLSearchParams(tokenReq.body).get('client_secret')).toBe('gh-secret')
    expect(tokenReq.headers.authorization).toBeUndefined()
  })

  it('maps GitHub errors answered as HTTP 200 to OAuth codes (a reused code is invalid_grant)', async () => {
    const c = client(settings)
    const { begun, callbackUrl } = await connect(c, 's1')
    const err = await rejection(
      c.finish({ callbackUrl, state: 's1', codeVerifier: begun.codeVerifier, issuer: begun.issuer }),
    )
    expect(err.oauthCode).toBe('invalid_grant')
    expect(err.message).toContain('bad_verification_code')
    expect(err.message).toContain(`token endpoint ${gh.url}/login/oauth/access_token`)
    expect(err.message).not.toContain(callbackUrl.searchParams.get('code')!)

    const bad = await rejection(c.refresh('ghr_unknown'))
    expect(bad.oauthCode).toBe('invalid_grant')
    expect(bad.message).toContain('bad_refresh_token')

    const wrong = client({ ...settings, clientSecret: 'not-the-secret' })
    const w = await wrong.begin({ state: 's' })
    const e2 = await rejection(
      wrong.finish({
        callbackUrl: await browse(w.url),
        state: 's',
        codeVerifier: w.codeVerifier,
        issuer: w.issuer,
      }),
    )
    expect(e2.oauthCode).toBe('invalid_client')
    expect(e2.message).not.toContain('not-the-secret')
  })

  it('refreshes expiring user tokens', async () => {
    const c = client(settings)
    const { tokens } = await connect(c)
    const next = await c.refresh(tokens.refreshToken!)
    expect(next.accessToken).toMatch(/^gho_bob_/)
    expect(next.accessToken).not.toBe(tokens.accessToken)
    expect(next.expiresAt! - Date.now()).toBeGreaterThan(28_000_000)
  })

  it('revokes with DELETE /applications/{client_id}/token and basic auth', async () => {
    const c = client(settings)
    const { tokens } = await connect(c)
    expect(gh.state.tokens.has(tokens.accessToken)).toBe(true)
    expect(await c.revoke({ accessToken: tokens.accessToken })).toBe('revoked')
    expect(gh.state.tokens.has(tokens.accessToken)).toBe(false)
    const del = gh.state.requests.findLast((r) => r.method === 'DELETE')!
    expect(del.path).toBe('/applications/Iv1.test/token')
    expect(Buffer.from(del.headers.authorization!.slice(6), 'base64').toString()).toBe('Iv1.test:gh-secret')
    expect(JSON.parse(del.body)).toEqual({ access_token: tokens.accessToken })
  })

  it('names the real GitHub endpoints when nothing is overridden', async () => {
    const c = client({ provider: 'github', clientId: 'Iv1.real', clientSecret: 'x', scopes: ['repo'] })
    const b = await c.begin({ state: 's' })
    expect(b.url.startsWith('https://github.com/login/oauth/authorize?')).toBe(true)
    expect(b.issuer).toBe('https://github.com')
  })
})

describe('Slack preset against a loopback fake of its OAuth v2 wire format', () => {
  let slack: Fake
  let settings: ProviderSettings
  beforeAll(async () => {
    slack = (await startSlack({ rotation: true })) as Fake
    settings = {
      provider: 'slack',
      authorizationEndpoint: `${slack.url}/oauth/v2/authorize`,
      tokenEndpoint: `${slack.url}/api/oauth.v2.access`,
      revocationEndpoint: `${slack.url}/api/auth.revoke`,
      clientId: '1234.5678',
      clientSecret: 'slack-secret',
      scopes: ['channels:read', 'chat:write'],
      authorizationParams: { login: 'carol' },
    }
  })
  afterAll(() => slack?.close())

  it('asks for user scopes (user_scope) and takes the user token out of authed_user', async () => {
    const c = client(settings)
    const { begun, tokens } = await connect(c)
    const url = new URL(begun.url)
    expect(url.searchParams.get('user_scope')).toBe('channels:read,chat:write')
    expect(url.searchParams.has('scope')).toBe(false)
    expect(tokens.accessToken).toMatch(/^xoxp-carol-/)
    expect(tokens).toMatchObject({ tokenType: 'Bearer', scopes: ['channels:read', 'chat:write'] })
    expect(tokens.refreshToken).toMatch(/^xoxe-1-/)
    expect(tokens.expiresAt! - Date.now()).toBeGreaterThan(43_000_000)
  })

  it('refreshes rotated user tokens and maps {ok:false} errors', async () => {
    const c = client(settings)
    const { tokens } = await connect(c)
    const next = await c.refresh(tokens.refreshToken!)
    expect(next.accessToken).toMatch(/^xoxp-carol-/)
    expect(next.refreshToken).not.toBe(tokens.refreshToken)
    const err = await rejection(c.refresh(tokens.refreshToken!)) // rotated away
    expect(err.oauthCode).toBe('invalid_grant')
    expect(err.message).toContain('Slack: invalid_refresh_token')

    const wrong = client({ ...settings, clientSecret: 'nope-secret' })
    const w = await wrong.begin({ state: 's' })
    const e2 = await rejection(
      wrong.finish({
        callbackUrl: await browse(w.url),
        state: 's',
        codeVerifier: w.codeVerifier,
        issuer: w.issuer,
      }),
    )
    expect(e2.oauthCode).toBe('invalid_client')
    expect(e2.message).not.toContain('nope-secret')
  })

  it('revokes through auth.revoke', async () => {
    const c = client(settings)
    const { tokens } = await connect(c)
    expect(await c.revoke({ accessToken: tokens.accessToken })).toBe('revoked')
    expect(slack.state.tokens.has(tokens.accessToken)).toBe(false)
    const call = slack.state.requests.findLast((r) => r.path === '/api/auth.revoke')!
    expect(call.headers.authorization).toBe(`Bearer ${tokens.accessToken}`)
  })
})
