import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  clientMetadataDocument,
  OAuthClient,
  OAuthError,
  parseBearerChallenge,
  type ProviderSettings,
} from '../../src/oauth/index.js'
import { MemoryRegistrations } from './memory-registrations.js'

const REDIRECT = 'http://127.0.0.1:9/oauth/callback'
const CLIENT_SECRET = 'cs-SECRET-must-not-leak'
const REFRESH = 'rt-SECRET-must-not-leak'
const LEAKY = 'leaked-token-from-body'

interface Answer {
  status: number
  type: string
  body: string
}

async function rejection(p: Promise<unknown>): Promise<OAuthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(OAuthError)
  const e = err as OAuthError
  for (const secret of [CLIENT_SECRET, REFRESH, LEAKY]) expect(e.message).not.toContain(secret)
  return e
}

describe('OAuthClient error handling', () => {
  let server: Server
  let base: string
  let next: Answer
  let metadata: Record<string, unknown> = {}
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume()
      const path = new URL(req.url!, 'http://x').pathname
      if (path === '/.well-known/oauth-protected-resource/mcp') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [base] }))
      } else if (path === '/.well-known/oauth-authorization-server') {
        res.setHeader('content-type', 'application/json')
        res.end(
          JSON.stringify({
            issuer: base,
            authorization_endpoint: `${base}/authorize`,
            token_endpoint: `${base}/token`,
            ...metadata,
          }),
        )
      } else if (path === '/mcp') {
        res.writeHead(401, {
          'www-authenticate': `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
        })
        res.end()
      } else {
        res.writeHead(next.status, { 'content-type': next.type })
        res.end(next.body)
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const explicit = (s: Partial<ProviderSettings> = {}, allowInsecureRequests = true) =>
    new OAuthClient({
      settings: {
        authorizationEndpoint: `${base}/authorize`,
        tokenEndpoint: `${base}/token`,
        clientId: 'gatehouse',
        clientSecret: CLIENT_SECRET,
        ...s,
      },
      redirectUri: REDIRECT,
      clientName: 'Gatehouse',
      registrations: new MemoryRegistrations(),
      allowInsecureRequests,
    })

  const garbage: [string, Answer, string, RegExp][] = [
    [
      'an HTML error page',
      { status: 502, type: 'text/html', body: `<html>Bad gateway ${LEAKY}</html>` },
      'temporarily_unavailable',
      /answered HTTP 502 without an OAuth error body/,
    ],
    [
      'HTML with HTTP 200',
      { status: 200, type: 'text/html', body: `<html>${LEAKY}</html>` },
      'invalid_response',
      /non-JSON body \(content-type text\/html, HTTP 200\)/,
    ],
    [
      'JSON that is not JSON',
      { status: 200, type: 'application/json', body: `{"access_token": "${LEAKY}"` },
      'invalid_response',
      /token endpoint/,
    ],
    [
      'no access_token',
      { status: 200, type: 'application/json', body: '{"token_type":"bearer"}' },
      'invalid_response',
      /access_token/,
    ],
    [
      'a wrong token_type',
      { status: 200, type: 'application/json', body: `{"access_token":"${LEAKY}","token_type":"mac"}` },
      'invalid_response',
      /unsupported token_type/,
    ],
    [
      'an OAuth error',
      {
        status: 400,
        type: 'application/json',
        body: '{"error":"invalid_grant","error_description":"refresh token expired"}',
      },
      'invalid_grant',
      /answered invalid_grant: refresh token expired \(HTTP 400\)/,
    ],
  ]
  for (const [name, answer, code, message] of garbage) {
    it(`turns ${name} from the token endpoint into OAuthError ${code}, naming the endpoint`, async () => {
      next = answer
      const err = await rejection(explicit().refresh(REFRESH))
      expect(err.oauthCode).toBe(code)
      expect(err.message).toMatch(message)
      expect(err.message).toContain(`${base}/token`)
    })
  }

  it('reports an unreachable endpoint as retryable upstream_unavailable', async () => {
    const dead = createServer()
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
    const port = (dead.address() as { port: number }).port
    await new Promise<void>((r) => dead.close(() => r()))
    const err = await rejection(
      explicit({ tokenEndpoint: `http://127.0.0.1:${port}/token` }).refresh(REFRESH),
    )
    expect(err.oauthCode).toBe('unreachable')
    expect(err.code).toBe('upstream_unavailable')
    expect(err.retryable).toBe(true)
  })

  it('refuses http endpoints unless insecure requests are allowed', async () => {
    const err = await rejection(explicit({}, false).begin({ state: 's' }))
    expect(err.oauthCode).toBe('insecure_endpoint')
  })

  it('refuses an authorization server that does not advertise PKCE S256', async () => {
    metadata = { code_challenge_methods_supported: ['plain'], registration_endpoint: `${base}/register` }
    const c = new OAuthClient({
      settings: {},
      mcpUrl: `${base}/mcp`,
      redirectUri: REDIRECT,
      clientName: 'Gatehouse',
      registrations: new MemoryRegistrations(),
      allowInsecureRequests: true,
    })
    const err = await rejection(c.begin({ state: 's' }))
    expect(err.oauthCode).toBe('discovery_failed')
    expect(err.message).toContain('does not advertise PKCE S256')
  })

  it('reports a failed registration with the endpoint and status, not the body', async () => {
    metadata = { code_challenge_methods_supported: ['S256'], registration_endpoint: `${base}/register` }
    next = { status: 500, type: 'text/html', body: `<p>${LEAKY}</p>` }
    const c = new OAuthClient({
      settings: {},
      mcpUrl: `${base}/mcp`,
      redirectUri: REDIRECT,
      clientName: 'Gatehouse',
      registrations: new MemoryRegistrations(),
      allowInsecureRequests: true,
    })
    const err = await rejection(c.begin({ state: 's' }))
    expect(err.oauthCode).toBe('registration_failed')
    expect(err.message).toBe(
      `registration endpoint ${base}/register did not register the gateway (HTTP 500 (text/html))`,
    )
  })

  it('rejects an unknown provider preset as an invalid manifest', () => {
    expect(() => explicit({ provider: 'gitlab' })).toThrow(
      /unknown OAuth provider preset 'gitlab' \(known: github, slack\)/,
    )
  })
})

describe('parseBearerChallenge', () => {
  it('reads resource_metadata, scope and error, quoted or not', () => {
    expect(
      parseBearerChallenge(
        'Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", error_description="need \\"write\\""',
      ),
    ).toEqual({
      error: 'insufficient_scope',
      scopes: ['files:read', 'files:write'],
      resourceMetadata: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
      errorDescription: 'need "write"',
    })
    expect(parseBearerChallenge('bearer error=invalid_token')).toEqual({ error: 'invalid_token' })
  })

  it('finds the Bearer challenge among others and ignores empty input', () => {
    expect(parseBearerChallenge('Basic realm="x", Bearer scope="a"')).toEqual({ scopes: ['a'] })
    expect(
      parseBearerChallenge('DPoP algs="ES256", Bearer realm="r", resource_metadata="https://r/m"'),
    ).toEqual({
      resourceMetadata: 'https://r/m',
    })
    expect(parseBearerChallenge('Basic realm="x"')).toBeUndefined()
    expect(parseBearerChallenge('')).toBeUndefined()
    expect(parseBearerChallenge(null)).toBeUndefined()
    expect(parseBearerChallenge('Bearer')).toEqual({})
  })
})

describe('clientMetadataDocument', () => {
  it('describes a public client with the gateway callback', () => {
    expect(
      clientMetadataDocument({
        clientId: 'https://gw.example.com/oauth/client-metadata.json',
        clientName: 'Gatehouse',
        redirectUris: ['https://gw.example.com/oauth/callback'],
      }),
    ).toEqual({
      client_id: 'https://gw.example.com/oauth/client-metadata.json',
      client_name: 'Gatehouse',
      redirect_uris: ['https://gw.example.com/oauth/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    })
  })
})
