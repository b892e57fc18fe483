import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import Provider, { type ClientMetadata } from 'oidc-provider'

/** Scopes the provider's resource servers grant (besides openid and offline_access). */
export const PROVIDER_SCOPES = ['mcp:read', 'mcp:write', 'repo']

export interface OAuthProviderOptions {
  /** Pre-registered clients (redirect_uris, auth method, secret). */
  clients?: ClientMetadata[]
  /** Dynamic client registration (RFC 7591) open to anyone; default true. */
  registration?: boolean
  /** Access token lifetime in seconds; default 3600. */
  accessTokenTTL?: number
}

export interface AuthorizeOptions {
  /** Decline at the login page (the provider answers access_denied). */
  deny?: boolean
}

export interface TestOAuthProvider {
  issuer: string
  provider: Provider
  /**
   * Acts as `user`'s browser: follows the authorization URL's redirects, logs in and consents
   * through the provider's interaction pages, and returns the URL the provider finally
   * redirects to (the client's callback, with code and state, or an error).
   */
  authorize(url: string, user: string, opts?: AuthorizeOptions): Promise<URL>
  close(): Promise<void>
}

/**
 * A real OAuth 2.0 / OpenID Connect provider (npm `oidc-provider`) on loopback for upstream
 * token brokering tests: authorization code with PKCE, RFC 8707 resource indicators (JWT access
 * tokens whose `aud` is the resource), refresh tokens, RFC 7009 revocation, RFC 7591 dynamic
 * registration. Any login name is a valid account; each browser (authorize call) has its own
 * cookie jar, so users never share a session.
 */
export async function startOAuthProvider(o: OAuthProviderOptions = {}): Promise<TestOAuthProvider> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'oauth-key-1', alg: 'RS256', use: 'sig' }
  const server: Server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const provider = new Provider(issuer, {
    clients: o.clients ?? [],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', ...PROVIDER_SCOPES],
    ttl: {
      AccessToken: o.accessTokenTTL ?? 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 86_400,
      IdToken: 3600,
    },
    // every client allowed to refresh gets a refresh token, offline_access or not
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      registration: { enabled: o.registration ?? true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => ({
          scope: PROVIDER_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  })
  // development-interaction warnings and expected client errors are noise in tests
  provider.on('server_error', () => undefined)
  server.on('request', provider.callback())

  return {
    issuer,
    provider,
    authorize: (url, user, opts = {}) => browse(issuer, url, user, opts),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

async function browse(issuer: string, start: string, user: string, opts: AuthorizeOptions): Promise<URL> {
  const origin = new URL(issuer).origin
  const jar = new Map<string, string>()
  const go = async (url: string, init: RequestInit = {}): Promise<Response> => {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: {
        ...(init.headers as Record<string, string>),
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      },
    })
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';')
      const eq = pair!.indexOf('=')
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1))
    }
    return res
  }
  let res = await go(start)
  for (let hop = 0; hop < 15; hop++) {
    const location = res.headers.get('location')
    const status = res.status
    if (!location) {
      const text = await res.text()
      throw new Error(`provider flow stopped with HTTP ${status} at hop ${hop}: ${text.slice(0, 300)}`)
    }
    await res.body?.cancel()
    const next = new URL(location, issuer)
    if (next.origin !== origin) return next // left the provider: the client's callback
    if (/\/interaction\/[^/?]+$/.test(next.pathname)) {
      if (opts.deny) {
        res = await go(`${next.href}/abort`)
        continue
      }
      // GET renders the login or consent page; the form posts back to the same URL
      const html = await (await go(next.href)).text()
      const prompt = /name="prompt" value="(login|consent)"/.exec(html)?.[1]
      if (!prompt) throw new Error(`unexpected interaction page: ${html.slice(0, 200)}`)
      res = await go(next.href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(
          prompt === 'login' ? { prompt, login: user, password: 'x' } : { prompt },
        ).toString(),
      })
    } else {
      res = await go(next.href)
    }
  }
  throw new Error('provider flow did not leave the provider within 15 redirects')
}

export interface ProtectedResourceOptions {
  issuer: string
  /** Scope in the 401 challenge. */
  challengeScopes?: string[]
  /** PRM scopes_supported. */
  scopesSupported?: string[]
  /** Put resource_metadata in the challenge (else the client must find the well-known URL); default true. */
  metadataInChallenge?: boolean
}

export interface TestProtectedResource {
  /** The MCP endpoint (`/mcp`). */
  url: string
  /** Requests seen (method, path, authorization header present). */
  seen: { method: string; path: string; authorized: boolean }[]
  close(): Promise<void>
}

/**
 * An MCP-ish protected resource: POST /mcp without a bearer token answers 401 with a Bearer
 * challenge (resource_metadata, scope), and its RFC 9728 metadata names the provider.
 */
export async function startProtectedResource(o: ProtectedResourceOptions): Promise<TestProtectedResource> {
  const seen: TestProtectedResource['seen'] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    seen.push({ method: req.method ?? '', path, authorized: Boolean(req.headers.authorization) })
    req.resume()
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    if (req.method === 'GET' && path === '/.well-known/oauth-protected-resource/mcp') {
      res.setHeader('content-type', 'application/json')
      res.end(
        JSON.stringify({
          resource: `${base}/mcp`,
          authorization_servers: [o.issuer],
          ...(o.scopesSupported ? { scopes_supported: o.scopesSupported } : {}),
        }),
      )
      return
    }
    if (path === '/mcp' && !req.headers.authorization) {
      const params = [
        ...(o.metadataInChallenge === false
          ? []
          : [`resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`]),
        ...(o.challengeScopes ? [`scope="${o.challengeScopes.join(' ')}"`] : []),
      ]
      res.writeHead(401, { 'www-authenticate': `Bearer ${params.join(', ')}`.trim() })
      res.end()
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
