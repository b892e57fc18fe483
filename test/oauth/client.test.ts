import { decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OAuthClient, OAuthError, type OAuthClientOptions } from '../../src/oauth/index.js'
import {
  startOAuthProvider,
  startProtectedResource,
  type TestOAuthProvider,
  type TestProtectedResource,
} from '../helpers/oauth-provider.js'
import { MemoryRegistrations } from './memory-registrations.js'

const REDIRECT = 'http://127.0.0.1:9/oauth/callback'
const SECRET = 'confidential-secret-value-123'
const RESOURCE = 'https://mcp.example.test/mcp'

async function rejection(p: Promise<unknown>): Promise<OAuthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(OAuthError)
  return err as OAuthError
}

describe('OAuthClient against a real OAuth/OIDC provider (oidc-provider)', () => {
  let op: TestOAuthProvider
  const options = (o: Partial<OAuthClientOptions> = {}): OAuthClientOptions => ({
    settings: { issuer: op.issuer, clientId: 'gatehouse', clientSecret: SECRET, scopes: ['mcp:read'] },
    mcpUrl: RESOURCE,
    redirectUri: REDIRECT,
    clientName: 'Gatehouse test',
    registrations: new MemoryRegistrations(),
    allowInsecureRequests: true,
    ...o,
  })
  /** begin → browser → finish for `user`. */
  const connect = async (c: OAuthClient, user: string, state = `st-${user}`) => {
    const b = await c.begin({ state })
    const callbackUrl = await op.authorize(b.url, user)
    return {
      begun: b,
      tokens: await c.finish({
        callbackUrl,
        state,
        codeVerifier: b.codeVerifier,
        issuer: b.issuer,
        resource: b.resource,
      }),
    }
  }

  beforeAll(async () => {
    op = await startOAuthProvider({
      clients: [
        {
          client_id: 'gatehouse',
          client_secret: SECRET,
          redirect_uris: [REDIRECT],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    })
  })
  afterAll(() => op?.close())

  it('authorizes with PKCE S256 and the resource indicator, and exchanges the code', async () => {
    const c = new OAuthClient(options())
    const { begun, tokens } = await connect(c, 'alice')
    const url = new URL(begun.url)
    expect(url.origin).toBe(op.issuer)
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/)
    expect(url.searchParams.get('resource')).toBe(RESOURCE)
    expect(url.searchParams.get('scope')).toBe('mcp:read')
    expect(url.searchParams.get('client_id')).toBe('gatehouse')
    expect(begun).toMatchObject({ issuer: op.issuer, scopes: ['mcp:read'], resource: RESOURCE })
    expect(tokens.tokenType).toBe('Bearer')
    expect(tokens.refreshToken).toBeTruthy()
    expect(tokens.scopes).toEqual(['mcp:read'])
    expect(tokens.expiresAt! - Date.now()).toBeGreaterThan(3500_000)
    const claims = decodeJwt(tokens.accessToken)
    expect(claims).toMatchObject({ sub: 'alice', aud: RESOURCE, scope: 'mcp:read' })
  })

  it('keeps two users apart: each gets a token for their own account', async () => {
    const c = new OAuthClient(options())
    const [a, b] = await Promise.all([connect(c, 'alice'), connect(c, 'bob')])
    expect(decodeJwt(a.tokens.accessToken).sub).toBe('alice')
    expect(decodeJwt(b.tokens.accessToken).sub).toBe('bob')
  })

  it('refreshes, and answers invalid_grant for an unknown refresh token without echoing it', async () => {
    const c = new OAuthClient(options())
    const { tokens } = await connect(c, 'carol')
    const next = await c.refresh(tokens.refreshToken!)
    expect(next.accessToken).not.toBe(tokens.accessToken)
    expect(decodeJwt(next.accessToken)).toMatchObject({ sub: 'carol', aud: RESOURCE })
    expect(next.refreshToken).toBeTruthy()
    const err = await rejection(c.refresh('rt-not-a-real-token-0123456789'))
    expect(err.oauthCode).toBe('invalid_grant')
    expect(err.code).toBe('unauthenticated')
    expect(err.message).toContain(`token endpoint ${op.issuer}/token`)
    expect(err.message).not.toContain('rt-not-a-real-token')
    expect(err.message).not.toContain(SECRET)
  })

  it('revokes (RFC 7009): the refresh token no longer works', async () => {
    const c = new OAuthClient(options())
    const { tokens } = await connect(c, 'dave')
    expect(await c.revoke({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken! })).toBe(
      'revoked',
    )
    expect((await rejection(c.refresh(tokens.refreshToken!))).oauthCode).toBe('invalid_grant')
  })

  it('validates the callback: state mismatch, user refusal, issuer change', async () => {
    const c = new OAuthClient(options())
    const b = await c.begin({ state: 'right-state' })
    const cb = await op.authorize(b.url, 'erin')
    const wrong = await rejection(
      c.finish({ callbackUrl: cb, state: 'other-state', codeVerifier: b.codeVerifier, issuer: b.issuer }),
    )
    expect(wrong.oauthCode).toBe('invalid_state')
    expect(wrong.code).toBe('bad_request')
    const moved = await rejection(
      c.finish({
        callbackUrl: cb,
        state: 'right-state',
        codeVerifier: b.codeVerifier,
        issuer: 'https://elsewhere.test',
      }),
    )
    expect(moved.oauthCode).toBe('invalid_callback')

    const d = await c.begin({ state: 's2' })
    const denied = await op.authorize(d.url, 'erin', { deny: true })
    const err = await rejection(
      c.finish({ callbackUrl: denied, state: 's2', codeVerifier: d.codeVerifier, issuer: d.issuer }),
    )
    expect(err.oauthCode).toBe('access_denied')
    expect(err.code).toBe('forbidden')
    expect(err.message).toContain('End-User aborted interaction')
  })

  describe('discovery from an MCP server and dynamic client registration', () => {
    let rs: TestProtectedResource
    beforeAll(async () => {
      rs = await startProtectedResource({ issuer: op.issuer, challengeScopes: ['mcp:read', 'mcp:write'] })
    })
    afterAll(() => rs?.close())

    it('follows 401 → resource_metadata → authorization server, registers once, and uses the challenge scope', async () => {
      const registrations = new MemoryRegistrations()
      const c = new OAuthClient(options({ settings: {}, mcpUrl: rs.url, registrations }))
      const { begun, tokens } = await connect(c, 'frank')
      const url = new URL(begun.url)
      expect(url.searchParams.get('scope')).toBe('mcp:read mcp:write')
      expect(url.searchParams.get('resource')).toBe(rs.url)
      expect(begun.issuer).toBe(op.issuer)
      expect(registrations.entries.size).toBe(1)
      const reg = registrations.entries.get(op.issuer)!
      expect(url.searchParams.get('client_id')).toBe(reg.clientId)
      expect(reg.tokenEndpointAuthMethod).toBe('client_secret_basic')
      expect(reg.clientSecret).toBeTruthy()
      expect(JSON.stringify(reg.registration)).not.toContain(reg.clientSecret!)
      expect(decodeJwt(tokens.accessToken)).toMatchObject({
        sub: 'frank',
        aud: rs.url,
        scope: 'mcp:read mcp:write',
      })
      expect(rs.seen[0]).toMatchObject({ method: 'POST', path: '/mcp', authorized: false })

      // another client instance (another replica) reuses the registration
      const again = new OAuthClient(options({ settings: {}, mcpUrl: rs.url, registrations }))
      await connect(again, 'frank')
      expect(registrations.puts).toBe(1)
    })

    it('without resource_metadata in the challenge, finds the path-inserted well-known URL and PRM scopes_supported', async () => {
      const quiet = await startProtectedResource({
        issuer: op.issuer,
        metadataInChallenge: false,
        scopesSupported: ['mcp:read'],
      })
      try {
        const c = new OAuthClient(options({ settings: {}, mcpUrl: quiet.url }))
        const b = await c.begin({ state: 's' })
        expect(new URL(b.url).searchParams.get('scope')).toBe('mcp:read')
        expect(b.scopes).toEqual(['mcp:read'])
        expect(quiet.seen.map((s) => s.path)).toContain('/.well-known/oauth-protected-resource/mcp')
      } finally {
        await quiet.close()
      }
    })

    it('a caller-held challenge (step-up) supplies the scopes and saves the probe', async () => {
      const c = new OAuthClient(options({ settings: {}, mcpUrl: rs.url }))
      const before = rs.seen.length
      const b = await c.begin({
        state: 's',
        wwwAuthenticate: `Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="${new URL('/.well-known/oauth-protected-resource/mcp', rs.url).href}"`,
      })
      expect(b.scopes).toEqual(['mcp:write'])
      expect(rs.seen.slice(before).some((s) => s.path === '/mcp')).toBe(false)
    })

    it('fails clearly when the AS allows no registration and no client id is configured', async () => {
      const closed = await startOAuthProvider({ registration: false })
      const prs = await startProtectedResource({ issuer: closed.issuer })
      try {
        const c = new OAuthClient(options({ settings: {}, mcpUrl: prs.url }))
        const err = await rejection(c.begin({ state: 's' }))
        expect(err.oauthCode).toBe('registration_failed')
        expect(err.message).toContain('set client_id (and client_secret)')
      } finally {
        await prs.close()
        await closed.close()
      }
    })
  })
})
