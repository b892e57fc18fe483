import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'
import Provider from 'oidc-provider'

/** A user the test IdP knows: its `sub` is the account id; tenant and roles become token claims. */
export interface TestAccount {
  tenant?: string
  roles?: string[]
  name?: string
  /** Any other claims of its access tokens (e.g. `groups`). */
  claims?: Record<string, unknown>
}

export interface TokenOptions {
  /** The RFC 8707 resource (becomes `aud`). */
  resource: string
  /** Scopes to ask for besides `openid`; default every scope the IdP offers. */
  scopes?: string[]
  /** A client whose tokens live one second. */
  shortLived?: boolean
}

export interface TestIdp {
  issuer: string
  /** A JWT access token for `account`, from a real authorization-code + PKCE flow (login and consent through the IdP's interactions). */
  token(account: string, opts: TokenOptions): Promise<string>
  /** Signs a token with the IdP's own key (for claims the IdP would never issue, e.g. an already expired one). */
  sign(payload: JWTPayload, header?: { kid?: string; alg?: string }): Promise<string>
  /** Scopes every token may carry. */
  scopes: string[]
  close(): Promise<void>
}

export const IDP_SCOPES = ['mcp', 'gatehouse:admin', 'extra']
const REDIRECT = 'http://127.0.0.1/callback'

/**
 * A real OpenID Connect provider (npm `oidc-provider`) on loopback, issuing JWT access tokens
 * for RFC 8707 resources, with `tenant` and `roles` claims from its account table.
 */
export async function startTestIdp(accounts: Record<string, TestAccount>): Promise<TestIdp> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'idp-key-1', alg: 'RS256', use: 'sig' }
  const server: Server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const client = (id: string) => ({
    client_id: id,
    token_endpoint_auth_method: 'none' as const,
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code' as const],
  })
  const provider = new Provider(issuer, {
    clients: [client('gatehouse-test'), client('short-lived')],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    pkce: { required: () => true },
    ttl: {
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      IdToken: 3600,
      // the resource server's accessTokenTTL (1 s for the short-lived client)
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 3600,
    },
    claims: { openid: ['sub'], profile: ['name'] },
    findAccount: async (_ctx, sub) =>
      accounts[sub]
        ? {
            accountId: sub,
            claims: async () => ({ sub, ...(accounts[sub]!.name ? { name: accounts[sub]!.name } : {}) }),
          }
        : undefined,
    extraTokenClaims: async (_ctx, token) => {
      const a = accounts[(token as { accountId?: string }).accountId ?? '']
      return a
        ? {
            ...(a.tenant ? { tenant: a.tenant } : {}),
            ...(a.roles ? { roles: a.roles } : {}),
            ...(a.name ? { name: a.name } : {}),
            ...a.claims,
          }
        : {}
    },
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator, client) => ({
          scope: IDP_SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: client.clientId === 'short-lived' ? 1 : 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  })
  // The IdP's development-interaction warnings are noise here.
  provider.on('server_error', () => undefined)
  server.on('request', provider.callback())

  const token = async (account: string, opts: TokenOptions): Promise<string> => {
    const jar = new Map<string, string>()
    const go = async (url: string, init: RequestInit = {}): Promise<Response> => {
      const res = await fetch(new URL(url, issuer), {
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
    const clientId = opts.shortLived ? 'short-lived' : 'gatehouse-test'
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const auth = new URL('/auth', issuer)
    auth.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: ['openid', ...(opts.scopes ?? IDP_SCOPES)].join(' '),
      resource: opts.resource,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state: randomBytes(8).toString('hex'),
    }).toString()
    let res = await go(auth.href)
    let code: string | undefined
    for (let hop = 0; hop < 10 && !code; hop++) {
      const location = res.headers.get('location')
      await res.body?.cancel()
      if (!location) throw new Error(`IdP flow stopped with ${res.status} at hop ${hop}`)
      if (location.startsWith(REDIRECT)) {
        const back = new URL(location)
        code = back.searchParams.get('code') ?? undefined
        if (!code) throw new Error(`IdP refused: ${back.searchParams.get('error_description')}`)
        break
      }
      const interaction = /\/interaction\/([^/?]+)$/.exec(new URL(location, issuer).pathname)
      if (interaction) {
        // GET renders the login or consent page; the form posts back to the same URL.
        const page = await go(location)
        const html = await page.text()
        const prompt = /name="prompt" value="(login|consent)"/.exec(html)?.[1]
        if (!prompt) throw new Error(`unexpected interaction page: ${html.slice(0, 200)}`)
        res = await go(location, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(
            prompt === 'login' ? { prompt, login: account, password: 'x' } : { prompt },
          ).toString(),
        })
      } else {
        res = await go(location)
      }
    }
    if (!code) throw new Error('IdP flow did not return a code')
    const tok = await go('/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: verifier,
        client_id: clientId,
        resource: opts.resource,
      }).toString(),
    })
    const body = (await tok.json()) as { access_token?: string; error_description?: string }
    if (!body.access_token) throw new Error(`token endpoint: ${tok.status} ${body.error_description}`)
    return body.access_token
  }

  return {
    issuer,
    scopes: IDP_SCOPES,
    token,
    sign: (payload, header = {}) =>
      new SignJWT(payload)
        .setProtectedHeader({ alg: header.alg ?? 'RS256', kid: header.kid ?? 'idp-key-1', typ: 'at+jwt' })
        .sign(privateKey),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
