import * as client from 'openid-client'
import { parseBearerChallenge } from './challenge.js'
import { canonicalResource, discoverFromMcp, discoverIssuer, type AuthServerMetadata } from './discovery.js'
import { describeEndpoint, OAuthError, toOAuthError } from './errors.js'
import { assertSecure } from './fetching.js'
import { normalizingFetch, PROVIDER_PRESETS, type ProviderPreset } from './presets.js'
import {
  resolveClient,
  type ClientIdentity,
  type RegistrationCache,
  type TokenEndpointAuthMethod,
} from './registration.js'
import { toTokenSet, type TokenSet } from './tokens.js'

/** From a Connector manifest's `auth: {type: oauth2, ...}`, secrets already resolved. */
export interface ProviderSettings {
  /** Preset name ('github' | 'slack'): fills endpoints and quirks. */
  provider?: string
  /** Discovery (RFC 8414 / OIDC). */
  issuer?: string
  /** Explicit endpoints, for providers without metadata; they override a preset's and discovered ones. */
  authorizationEndpoint?: string
  tokenEndpoint?: string
  /** RFC 7009 endpoint; for the github preset a URL with `{client_id}` (DELETE /applications/{client_id}/token). */
  revocationEndpoint?: string
  clientId?: string
  clientSecret?: string
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod
  scopes?: string[]
  /** Extra authorization params (e.g. Slack's user_scope). */
  authorizationParams?: Record<string, string>
}

export interface OAuthClientOptions {
  settings: ProviderSettings
  /**
   * The upstream MCP server URL: when settings name no issuer/endpoints, discovery follows the
   * MCP authorization spec (2025-11-25) from it; it is also the RFC 8707 `resource` parameter.
   */
  mcpUrl?: string
  /** The gateway's /oauth/callback. */
  redirectUri: string
  /** Client ID Metadata Document URL (https) the gateway serves; used when the AS supports them and no client id is configured. */
  clientMetadataUrl?: string
  clientName: string
  registrations: RegistrationCache
  /** fetch for URLs learned at run time (discovered metadata, registration): SSRF-guarded. Manifest-written origins are trusted. */
  fetch?: typeof fetch
  /** Allow http:// endpoints (loopback tests, admin-written http URLs). */
  allowInsecureRequests?: boolean
}

export interface BeginInput {
  state: string
  /** Scopes to ask for (e.g. a step-up's); default: configured, then challenge, then PRM scopes_supported. */
  scopes?: string[]
  /** A WWW-Authenticate header the upstream already answered (401, or 403 insufficient_scope): saves the probe and supplies scopes. */
  wwwAuthenticate?: string
}

export interface BeginResult {
  url: string
  codeVerifier: string
  issuer: string
  scopes: string[]
  resource?: string
}

export interface FinishInput {
  callbackUrl: URL
  state: string
  codeVerifier: string
  issuer: string
  resource?: string
}

/** One authorization server, resolved once per OAuthClient. */
interface Resolved {
  config: client.Configuration
  issuer: string
  metadata: AuthServerMetadata
  identity: ClientIdentity
  preset?: ProviderPreset
  resource?: string
  challengeScopes?: string[]
  resourceScopes?: string[]
}

/**
 * The OAuth client for one connector's upstream: discovery and registration (lazily, once per
 * instance), the authorization URL (PKCE S256, RFC 8707 resource), code exchange, refresh and
 * revocation, on openid-client. Every failure is an OAuthError naming the endpoint.
 */
export class OAuthClient {
  private resolving: Promise<Resolved> | undefined
  private readonly preset: ProviderPreset | undefined
  private readonly trusted: Set<string>

  constructor(private readonly o: OAuthClientOptions) {
    const name = o.settings.provider
    this.preset = name ? PROVIDER_PRESETS[name] : undefined
    if (name && !this.preset)
      throw new OAuthError(
        'unknown_provider',
        `unknown OAuth provider preset '${name}' (known: ${Object.keys(PROVIDER_PRESETS).join(', ')})`,
        { code: 'invalid_manifest' },
      )
    const s = o.settings
    this.trusted = new Set(
      [o.mcpUrl, s.issuer, s.authorizationEndpoint, s.tokenEndpoint, s.revocationEndpoint]
        .filter((u): u is string => Boolean(u))
        .flatMap((u) => originOf(u) ?? []),
    )
  }

  /** Where to send the user. Discovery and registration happen here the first time. */
  async begin(input: BeginInput): Promise<BeginResult> {
    const challenge = parseBearerChallenge(input.wwwAuthenticate)
    const r = await this.resolve(input.wwwAuthenticate)
    const scopes =
      input.scopes ??
      challenge?.scopes ??
      this.o.settings.scopes ??
      r.challengeScopes ??
      r.resourceScopes ??
      []
    const codeVerifier = client.randomPKCECodeVerifier()
    const params: Record<string, string> = {
      redirect_uri: this.o.redirectUri,
      state: input.state,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      ...(r.preset ? r.preset.scopeParams(scopes) : scopes.length ? { scope: scopes.join(' ') } : {}),
      ...(r.resource ? { resource: r.resource } : {}),
      ...this.o.settings.authorizationParams,
    }
    let url: URL
    try {
      url = client.buildAuthorizationUrl(r.config, params)
    } catch (err) {
      throw toOAuthError(err, `authorization endpoint of ${r.issuer}`)
    }
    return {
      url: url.href,
      codeVerifier,
      issuer: r.issuer,
      scopes,
      ...(r.resource ? { resource: r.resource } : {}),
    }
  }

  /** The issuer this client resolves to (discovery and registration the first time, as `begin`). */
  async issuer(): Promise<string> {
    return (await this.resolve()).issuer
  }

  /** Validates the callback (state, `iss` when advertised, error parameters) and exchanges the code. */
  async finish(input: FinishInput): Promise<TokenSet> {
    const r = await this.resolve()
    if (input.issuer !== r.issuer)
      throw new OAuthError(
        'invalid_callback',
        `this connection attempt was started with ${describeEndpoint(input.issuer)}, but the connector now uses ${describeEndpoint(r.issuer)}; connect again`,
      )
    // The token request's redirect_uri must be the registered one, whatever URL the callback reached us at.
    const current = new URL(this.o.redirectUri)
    for (const [k, v] of input.callbackUrl.searchParams) current.searchParams.append(k, v)
    const resource = input.resource ?? r.resource
    const what = `token endpoint ${describeEndpoint(r.metadata.token_endpoint ?? r.issuer)}`
    try {
      const res = await client.authorizationCodeGrant(
        r.config,
        current,
        { pkceCodeVerifier: input.codeVerifier, expectedState: input.state },
        resource ? { resource } : undefined,
      )
      return toTokenSet(res, what, undefined)
    } catch (err) {
      throw toOAuthError(err, what)
    }
  }

  /** A new access token; invalid_grant (revoked, expired refresh token) → OAuthError 'invalid_grant'. */
  async refresh(
    refreshToken: string,
    opts: { scopes?: string[]; resource?: string } = {},
  ): Promise<TokenSet> {
    const r = await this.resolve()
    const resource = opts.resource ?? r.resource
    const what = `token endpoint ${describeEndpoint(r.metadata.token_endpoint ?? r.issuer)}`
    try {
      const res = await client.refreshTokenGrant(r.config, refreshToken, {
        ...(opts.scopes?.length ? { scope: opts.scopes.join(' ') } : {}),
        ...(resource ? { resource } : {}),
      })
      return toTokenSet(res, what, opts.scopes, refreshToken)
    } catch (err) {
      throw toOAuthError(err, what)
    }
  }

  /** RFC 7009 (or the preset's own call) when there is a revocation endpoint; 'unsupported' otherwise. */
  async revoke(t: { accessToken?: string; refreshToken?: string }): Promise<'revoked' | 'unsupported'> {
    const r = await this.resolve()
    const endpoint = this.o.settings.revocationEndpoint ?? r.metadata.revocation_endpoint
    if (!endpoint) return 'unsupported'
    if (r.preset?.revoke) {
      return r.preset.revoke({
        endpoint,
        clientId: r.identity.clientId,
        ...(r.identity.clientSecret ? { clientSecret: r.identity.clientSecret } : {}),
        ...t,
        fetch: this.fetchFor(new URL(endpoint)),
      })
    }
    const what = `revocation endpoint ${describeEndpoint(endpoint)}`
    // the refresh token first: revoking it ends the grant at most servers
    const tokens = [
      ...(t.refreshToken ? [[t.refreshToken, 'refresh_token'] as const] : []),
      ...(t.accessToken ? [[t.accessToken, 'access_token'] as const] : []),
    ]
    let revoked = 0
    for (const [token, hint] of tokens) {
      try {
        await client.tokenRevocation(r.config, token, { token_type_hint: hint })
        revoked++
      } catch (err) {
        // RFC 7009 §2.2.1: a server may not revoke some token types (e.g. self-contained JWTs)
        if (err instanceof client.ResponseBodyError && err.error === 'unsupported_token_type') continue
        throw toOAuthError(err, what)
      }
    }
    return revoked > 0 || tokens.length === 0 ? 'revoked' : 'unsupported'
  }

  private resolve(wwwAuthenticate?: string): Promise<Resolved> {
    this.resolving ??= this.doResolve(wwwAuthenticate)
    // a failed discovery is not cached: the next attempt tries again
    this.resolving.catch(() => (this.resolving = undefined))
    return this.resolving
  }

  private async doResolve(wwwAuthenticate: string | undefined): Promise<Resolved> {
    const s = this.o.settings
    const found = await this.authorizationServer(wwwAuthenticate)
    const metadata: AuthServerMetadata = {
      ...found.metadata,
      ...(s.authorizationEndpoint ? { authorization_endpoint: s.authorizationEndpoint } : {}),
      ...(s.tokenEndpoint ? { token_endpoint: s.tokenEndpoint } : {}),
      ...(s.revocationEndpoint ? { revocation_endpoint: s.revocationEndpoint } : {}),
    }
    for (const k of ['authorization_endpoint', 'token_endpoint'] as const) {
      const v = metadata[k]
      if (!v) throw new OAuthError('discovery_failed', `authorization server ${found.issuer} has no ${k}`)
      assertSecure(new URL(v), this.allowInsecure, k.replace('_', ' '))
    }
    const identity = await resolveClient({
      issuer: found.issuer,
      metadata,
      ...(s.clientId ? { clientId: s.clientId } : {}),
      ...(s.clientSecret ? { clientSecret: s.clientSecret } : {}),
      ...((s.tokenEndpointAuthMethod ?? this.preset?.tokenEndpointAuthMethod)
        ? { tokenEndpointAuthMethod: s.tokenEndpointAuthMethod ?? this.preset!.tokenEndpointAuthMethod }
        : {}),
      ...(this.o.clientMetadataUrl ? { clientMetadataUrl: this.o.clientMetadataUrl } : {}),
      clientName: this.o.clientName,
      redirectUri: this.o.redirectUri,
      registrations: this.o.registrations,
      fetch: metadata.registration_endpoint ? this.fetchFor(new URL(metadata.registration_endpoint)) : fetch,
    })
    const config = new client.Configuration(
      metadata as client.ServerMetadata,
      identity.clientId,
      { redirect_uris: [this.o.redirectUri] },
      clientAuth(identity),
    )
    const base = (url: string, init: RequestInit) => this.fetchFor(new URL(url))(url, init)
    config[client.customFetch] = (
      this.preset ? normalizingFetch(this.preset, metadata.token_endpoint!, base) : base
    ) as client.CustomFetch
    if (this.allowInsecure) client.allowInsecureRequests(config)
    return { ...found, config, metadata, identity, ...(this.preset ? { preset: this.preset } : {}) }
  }

  /** Metadata from the preset/explicit endpoints, the configured issuer, or the MCP server. */
  private async authorizationServer(wwwAuthenticate: string | undefined): Promise<{
    issuer: string
    metadata: AuthServerMetadata
    resource?: string
    challengeScopes?: string[]
    resourceScopes?: string[]
  }> {
    const s = this.o.settings
    const resource =
      this.o.mcpUrl && (!this.preset || this.preset.resourceIndicators)
        ? canonicalResource(new URL(this.o.mcpUrl))
        : undefined
    const discovery = { fetchFor: (u: URL) => this.fetchFor(u), allowInsecure: this.allowInsecure }
    if (s.issuer) {
      const metadata = await discoverIssuer(new URL(s.issuer), discovery)
      if (metadata) return { issuer: metadata.issuer, metadata, ...(resource ? { resource } : {}) }
      if (!s.authorizationEndpoint || !s.tokenEndpoint)
        throw new OAuthError(
          'discovery_failed',
          `issuer ${describeEndpoint(s.issuer)} publishes no OAuth or OpenID metadata`,
        )
    }
    const authz = s.authorizationEndpoint ?? this.preset?.authorizationEndpoint
    const token = s.tokenEndpoint ?? this.preset?.tokenEndpoint
    if (authz && token) {
      const issuer = s.issuer ?? new URL(authz).origin
      const revocation = s.revocationEndpoint ?? this.preset?.revocationEndpoint
      return {
        issuer,
        metadata: {
          issuer,
          authorization_endpoint: authz,
          token_endpoint: token,
          ...(revocation ? { revocation_endpoint: revocation } : {}),
        },
        ...(resource ? { resource } : {}),
      }
    }
    if (!this.o.mcpUrl)
      throw new OAuthError(
        'discovery_failed',
        'the oauth2 settings name no provider, issuer or endpoints, and there is no MCP server URL to discover them from',
        { code: 'invalid_manifest' },
      )
    const d = await discoverFromMcp(new URL(this.o.mcpUrl), discovery, wwwAuthenticate)
    const methods = d.metadata.code_challenge_methods_supported
    if (!Array.isArray(methods) || !methods.includes('S256'))
      throw new OAuthError(
        'discovery_failed',
        `authorization server ${describeEndpoint(d.issuer)} does not advertise PKCE S256 (code_challenge_methods_supported); the MCP authorization spec requires refusing it`,
      )
    return {
      issuer: d.issuer,
      metadata: d.metadata,
      resource: d.resource,
      ...(d.challenge?.scopes ? { challengeScopes: d.challenge.scopes } : {}),
      ...(d.resourceScopes ? { resourceScopes: d.resourceScopes } : {}),
    }
  }

  private get allowInsecure(): boolean {
    return this.o.allowInsecureRequests === true
  }

  /** Manifest-written origins are trusted; everything learned at run time goes through the guarded fetch. */
  private fetchFor(url: URL): typeof fetch {
    return this.trusted.has(url.origin) ? fetch : (this.o.fetch ?? fetch)
  }
}

function clientAuth(c: ClientIdentity): client.ClientAuth {
  if (c.authMethod === 'client_secret_basic') return secretBasic(c.clientId, c.clientSecret ?? '')
  if (c.authMethod === 'client_secret_post') return client.ClientSecretPost(c.clientSecret)
  return client.None()
}

/**
 * client_secret_basic with RFC 6749 §2.3.1 encoding that leaves unreserved characters alone:
 * openid-client also escapes '-', '.', '_' and '~', which servers that do not URL-decode the
 * credentials (many, including the MCP conformance AS) then reject.
 */
function secretBasic(clientId: string, secret: string): client.ClientAuth {
  const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, '+')
  const value = `Basic ${Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64')}`
  return (_as, _client, _body, headers) => headers.set('authorization', value)
}

function originOf(u: string): string | undefined {
  try {
    return new URL(u.replace('{client_id}', 'x')).origin
  } catch {
    return undefined
  }
}
