import type { AuthServerMetadata } from './discovery.js'
import { describeEndpoint, OAuthError, safeText } from './errors.js'
import { describeAnswer, fetchJson } from './fetching.js'

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none'

/** A client registered (or declared) at one authorization server. */
export interface RegisteredClient {
  clientId: string
  clientSecret?: string
  tokenEndpointAuthMethod?: string
  /** The registration response (RFC 7591), or a note of how the client came to be. */
  registration: Record<string, unknown>
}

/** Registrations per issuer; the integrator backs it with the store (per tenant+connector+issuer). */
export interface RegistrationCache {
  get(issuer: string): Promise<RegisteredClient | undefined>
  /** First writer wins: the caller uses what this returns. */
  put(issuer: string, c: RegisteredClient): Promise<RegisteredClient>
}

export interface RegistrationInput {
  issuer: string
  metadata: AuthServerMetadata
  clientId?: string
  clientSecret?: string
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod
  clientMetadataUrl?: string
  clientName: string
  redirectUri: string
  registrations: RegistrationCache
  fetch: typeof fetch
}

/** The JSON of the Client ID Metadata Document the gateway serves at its clientMetadataUrl. */
export function clientMetadataDocument(o: {
  clientId: string
  clientName: string
  redirectUris: string[]
}): Record<string, unknown> {
  return {
    client_id: o.clientId,
    client_name: o.clientName,
    redirect_uris: o.redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }
}

/** A client as the flow uses it: id, secret and the token endpoint auth method to use. */
export interface ClientIdentity {
  clientId: string
  clientSecret?: string
  authMethod: TokenEndpointAuthMethod
  /** How the client was obtained: configured, metadata_document or dynamic. */
  via: 'configured' | 'metadata_document' | 'dynamic'
}

/**
 * The MCP spec's registration order: a configured (pre-registered) client id, then a Client ID
 * Metadata Document when the AS supports them and the gateway serves one, then dynamic client
 * registration (RFC 7591, once per issuer through the cache).
 */
export async function resolveClient(i: RegistrationInput): Promise<ClientIdentity> {
  const supported = i.metadata.token_endpoint_auth_methods_supported
  if (i.clientId) {
    return {
      clientId: i.clientId,
      ...(i.clientSecret ? { clientSecret: i.clientSecret } : {}),
      authMethod: chooseAuthMethod(supported, Boolean(i.clientSecret), i.tokenEndpointAuthMethod, i.issuer),
      via: 'configured',
    }
  }
  if (i.metadata.client_id_metadata_document_supported === true && i.clientMetadataUrl) {
    return { clientId: i.clientMetadataUrl, authMethod: 'none', via: 'metadata_document' }
  }
  const known = await i.registrations.get(i.issuer)
  const reg = known ?? (await i.registrations.put(i.issuer, await register(i)))
  return {
    clientId: reg.clientId,
    ...(reg.clientSecret ? { clientSecret: reg.clientSecret } : {}),
    authMethod: chooseAuthMethod(
      supported,
      Boolean(reg.clientSecret),
      asMethod(reg.tokenEndpointAuthMethod),
      i.issuer,
    ),
    via: 'dynamic',
  }
}

/**
 * The token endpoint auth method: the registered or configured one when the AS accepts it, else
 * the best the AS supports for what we hold (a secret → basic, then post; none → none).
 * RFC 8414's default for an AS that lists nothing is client_secret_basic.
 */
export function chooseAuthMethod(
  supported: string[] | undefined,
  hasSecret: boolean,
  preferred: TokenEndpointAuthMethod | undefined,
  issuer: string,
): TokenEndpointAuthMethod {
  const accepts = (m: string) => !supported || supported.includes(m)
  if (preferred && accepts(preferred) && (preferred === 'none' || hasSecret)) return preferred
  if (!hasSecret) return 'none'
  const list = supported ?? ['client_secret_basic']
  if (list.includes('client_secret_basic')) return 'client_secret_basic'
  if (list.includes('client_secret_post')) return 'client_secret_post'
  if (list.includes('none')) return 'none'
  throw new OAuthError(
    'registration_failed',
    `authorization server ${issuer} accepts only ${list.map((m) => safeText(m, 40)).join(', ')} at its token endpoint; the gateway supports client_secret_basic, client_secret_post and none`,
  )
}

function asMethod(v: string | undefined): TokenEndpointAuthMethod | undefined {
  return v === 'client_secret_basic' || v === 'client_secret_post' || v === 'none' ? v : undefined
}

/** What to ask for at registration: a confidential method when the AS offers one (basic first). */
function requestedMethod(supported: string[] | undefined): TokenEndpointAuthMethod {
  const list = supported ?? ['client_secret_basic']
  if (list.includes('client_secret_basic')) return 'client_secret_basic'
  if (list.includes('client_secret_post')) return 'client_secret_post'
  return 'none'
}

async function register(i: RegistrationInput): Promise<RegisteredClient> {
  const endpoint = i.metadata.registration_endpoint
  if (!endpoint) {
    throw new OAuthError(
      'registration_failed',
      `authorization server ${i.issuer} offers no way to register the gateway: no client_id is configured, it does not support client ID metadata documents${i.clientMetadataUrl ? '' : ' (or the gateway has no public URL to serve one)'}, and it has no registration_endpoint; set client_id (and client_secret) in the connector's auth`,
    )
  }
  const url = new URL(endpoint)
  const method = requestedMethod(i.metadata.token_endpoint_auth_methods_supported)
  const a = await fetchJson(i.fetch, url, 'registration endpoint', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: i.clientName,
      redirect_uris: [i.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: method,
    }),
  })
  const j = a.json
  if ((a.status !== 201 && a.status !== 200) || !j || typeof j.client_id !== 'string' || !j.client_id) {
    const err =
      j && typeof j.error === 'string' ? `: ${safeText(j.error, 64)} ${safeText(j.error_description)}` : ''
    throw new OAuthError(
      'registration_failed',
      `registration endpoint ${describeEndpoint(url)} did not register the gateway (${describeAnswer(a)}${err.trimEnd()})`,
    )
  }
  const secret = typeof j.client_secret === 'string' && j.client_secret ? j.client_secret : undefined
  const registered =
    asMethod(j.token_endpoint_auth_method as string | undefined) ?? (secret ? method : 'none')
  const { client_secret: _omit, registration_access_token: _omit2, ...shown } = j
  return {
    clientId: j.client_id,
    ...(secret ? { clientSecret: secret } : {}),
    tokenEndpointAuthMethod: registered,
    registration: shown,
  }
}
