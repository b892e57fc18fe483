import { parseBearerChallenge, type BearerChallenge } from './challenge.js'
import { describeEndpoint, OAuthError, safeText } from './errors.js'
import { assertSecure, describeAnswer, fetchJson } from './fetching.js'

/** RFC 8414 authorization server metadata (the fields the client reads; others pass through). */
export interface AuthServerMetadata {
  issuer: string
  authorization_endpoint?: string
  token_endpoint?: string
  registration_endpoint?: string
  revocation_endpoint?: string
  scopes_supported?: string[]
  code_challenge_methods_supported?: string[]
  token_endpoint_auth_methods_supported?: string[]
  client_id_metadata_document_supported?: boolean
  authorization_response_iss_parameter_supported?: boolean
  [key: string]: unknown
}

/** What MCP discovery learned about an upstream MCP server. */
export interface McpDiscovery {
  issuer: string
  metadata: AuthServerMetadata
  /** The RFC 8707 resource indicator for this server's tokens. */
  resource: string
  /** PRM `scopes_supported`. */
  resourceScopes?: string[]
  /** The challenge of the unauthenticated probe (its `scope` comes first in scope selection). */
  challenge?: BearerChallenge
}

export interface DiscoveryOptions {
  /** fetch for a URL (trusted for manifest-written origins, SSRF-guarded otherwise). */
  fetchFor(url: URL): typeof fetch
  allowInsecure: boolean
}

const PROBE_TIMEOUT_MS = 10_000

/**
 * Discovery per the MCP authorization spec (2025-11-25): the challenge of an unauthenticated
 * request (or `wwwAuthenticate`, a challenge the caller already holds) names the protected
 * resource metadata; else the RFC 9728 well-known URLs, path-inserted then root. Its first
 * authorization server's metadata follows (see `discoverIssuer`). A server without resource
 * metadata is treated as the 2025-03-26 spec did: its origin is the authorization server, with
 * `/authorize`, `/token` and `/register` when it has no metadata either.
 */
export async function discoverFromMcp(
  mcpUrl: URL,
  o: DiscoveryOptions,
  wwwAuthenticate?: string,
): Promise<McpDiscovery> {
  assertSecure(mcpUrl, o.allowInsecure, 'MCP server')
  const challenge = parseBearerChallenge(wwwAuthenticate) ?? (await probe(mcpUrl, o))
  const prm = await protectedResourceMetadata(mcpUrl, challenge?.resourceMetadata, o)
  if (!prm) return legacyDiscovery(mcpUrl, o, challenge)
  const resource = checkResource(mcpUrl, prm.json)
  const servers = prm.json.authorization_servers
  const first = Array.isArray(servers) && typeof servers[0] === 'string' ? servers[0] : undefined
  if (!first)
    throw new OAuthError(
      'discovery_failed',
      `protected resource metadata ${describeEndpoint(prm.url)} names no authorization_servers`,
    )
  const issuer = parseUrl(first, `authorization server in ${describeEndpoint(prm.url)}`)
  const metadata = await discoverIssuer(issuer, o)
  if (!metadata)
    throw new OAuthError(
      'discovery_failed',
      `authorization server ${describeEndpoint(issuer)} publishes no OAuth or OpenID metadata`,
    )
  const scopes = stringArray(prm.json.scopes_supported)
  return {
    issuer: metadata.issuer,
    metadata,
    resource,
    ...(scopes?.length ? { resourceScopes: scopes } : {}),
    ...(challenge ? { challenge } : {}),
  }
}

/** The well-known metadata URLs of an issuer, in the MCP spec's order. */
export function issuerMetadataUrls(issuer: URL): URL[] {
  const path = issuer.pathname.replace(/\/+$/, '')
  const at = (p: string) => new URL(p, issuer.origin)
  if (!path) return [at('/.well-known/oauth-authorization-server'), at('/.well-known/openid-configuration')]
  return [
    at(`/.well-known/oauth-authorization-server${path}`),
    at(`/.well-known/openid-configuration${path}`),
    at(`${path}/.well-known/openid-configuration`),
  ]
}

/**
 * RFC 8414 path-insert, OIDC path-insert, OIDC path-append (root forms for an issuer without a
 * path). The metadata's `issuer` must be the one asked about (RFC 8414 §3.3) unless `sameOrigin`
 * (the 2025-03-26 fallback, where the issuer was only guessed from the MCP URL).
 * Undefined when no location answers 200 with JSON.
 */
export async function discoverIssuer(
  issuer: URL,
  o: DiscoveryOptions,
  sameOrigin = false,
): Promise<AuthServerMetadata | undefined> {
  assertSecure(issuer, o.allowInsecure, 'authorization server')
  for (const url of issuerMetadataUrls(issuer)) {
    const a = await fetchJson(o.fetchFor(url), url, 'authorization server metadata')
    if (a.status !== 200 || !a.json) continue
    const meta = a.json as AuthServerMetadata
    const expected = issuer.href.replace(/\/+$/, '')
    const got = typeof meta.issuer === 'string' ? meta.issuer.replace(/\/+$/, '') : undefined
    const ok = sameOrigin ? got !== undefined && new URL(got).origin === issuer.origin : got === expected
    if (!ok)
      throw new OAuthError(
        'discovery_failed',
        `authorization server metadata ${describeEndpoint(url)} names issuer ${safeText(meta.issuer, 120)}, expected ${expected}`,
      )
    return meta
  }
  return undefined
}

/** The unauthenticated request whose 401 carries the Bearer challenge. */
async function probe(mcpUrl: URL, o: DiscoveryOptions): Promise<BearerChallenge | undefined> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 'gatehouse-auth-probe',
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'gatehouse', version: '0.1.0' },
    },
  })
  let res: Response
  try {
    res = await o.fetchFor(mcpUrl)(mcpUrl.href, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body,
    })
  } catch {
    return undefined // unreachable now: the well-known URLs are tried next and fail clearly
  }
  await res.body?.cancel().catch(() => undefined)
  const session = res.headers.get('mcp-session-id')
  if (res.ok && session) {
    // the server let us in without a token: do not leave the session we opened behind
    void o
      .fetchFor(mcpUrl)(mcpUrl.href, { method: 'DELETE', headers: { 'mcp-session-id': session } })
      .then((r) => r.body?.cancel())
      .catch(() => undefined)
  }
  return res.status === 401 ? parseBearerChallenge(res.headers.get('www-authenticate')) : undefined
}

interface FoundPrm {
  url: URL
  json: Record<string, unknown>
}

async function protectedResourceMetadata(
  mcpUrl: URL,
  fromChallenge: string | undefined,
  o: DiscoveryOptions,
): Promise<FoundPrm | undefined> {
  if (fromChallenge) {
    const url = parseUrl(fromChallenge, 'resource_metadata of the MCP server challenge')
    assertSecure(url, o.allowInsecure, 'protected resource metadata')
    const a = await fetchJson(o.fetchFor(url), url, 'protected resource metadata')
    if (a.status === 200 && a.json) return { url, json: a.json }
    throw new OAuthError(
      'discovery_failed',
      `protected resource metadata ${describeEndpoint(url)} (from the MCP server's challenge) answered ${describeAnswer(a)}`,
    )
  }
  const path = mcpUrl.pathname.replace(/\/+$/, '')
  const candidates = [
    ...(path ? [new URL(`/.well-known/oauth-protected-resource${path}`, mcpUrl.origin)] : []),
    new URL('/.well-known/oauth-protected-resource', mcpUrl.origin),
  ]
  for (const url of candidates) {
    const a = await fetchJson(o.fetchFor(url), url, 'protected resource metadata')
    if (a.status === 200 && a.json) return { url, json: a.json }
  }
  return undefined
}

/**
 * The PRM's `resource` must be the MCP server or a prefix of it (same origin, path prefix):
 * metadata for some other resource must not steer where tokens for this one are sent.
 */
function checkResource(mcpUrl: URL, prm: Record<string, unknown>): string {
  const canonical = canonicalResource(mcpUrl)
  if (typeof prm.resource !== 'string') return canonical
  let r: URL
  try {
    r = new URL(prm.resource)
  } catch {
    throw new OAuthError('discovery_failed', `protected resource metadata has an invalid resource`)
  }
  const prefix = r.pathname.endsWith('/') ? r.pathname : `${r.pathname}/`
  const covers =
    r.origin === mcpUrl.origin && (r.pathname === mcpUrl.pathname || `${mcpUrl.pathname}/`.startsWith(prefix))
  if (!covers)
    throw new OAuthError(
      'discovery_failed',
      `protected resource metadata is for ${describeEndpoint(r)}, which does not cover the MCP server ${describeEndpoint(mcpUrl)}`,
    )
  return prm.resource
}

/** RFC 8707 / MCP canonical URI: no fragment. */
export function canonicalResource(url: URL): string {
  const u = new URL(url)
  u.hash = ''
  return u.href
}

async function legacyDiscovery(
  mcpUrl: URL,
  o: DiscoveryOptions,
  challenge: BearerChallenge | undefined,
): Promise<McpDiscovery> {
  const base = new URL(mcpUrl.origin)
  const found = await discoverIssuer(base, o, true)
  const metadata: AuthServerMetadata = found ?? {
    issuer: mcpUrl.origin,
    authorization_endpoint: new URL('/authorize', base).href,
    token_endpoint: new URL('/token', base).href,
    registration_endpoint: new URL('/register', base).href,
    // 2025-03-26 servers without metadata: PKCE was already mandatory for them
    code_challenge_methods_supported: ['S256'],
  }
  return {
    issuer: metadata.issuer,
    metadata,
    resource: canonicalResource(mcpUrl),
    ...(challenge ? { challenge } : {}),
  }
}

function parseUrl(v: string, what: string): URL {
  try {
    return new URL(v)
  } catch {
    throw new OAuthError('discovery_failed', `${what} is not a URL`)
  }
}

export function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined
}
