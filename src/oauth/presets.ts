import { describeEndpoint, OAuthError, safeText, toOAuthError } from './errors.js'
import type { TokenEndpointAuthMethod } from './registration.js'

type Json = Record<string, unknown>

export interface PresetRevokeInput {
  /** The revocation endpoint (preset or settings override; `{client_id}` is substituted). */
  endpoint: string
  clientId: string
  clientSecret?: string
  accessToken?: string
  refreshToken?: string
  fetch: typeof fetch
}

/** An OAuth provider whose endpoints and quirks the gateway knows (settings endpoints override these). */
export interface ProviderPreset {
  authorizationEndpoint: string
  tokenEndpoint: string
  revocationEndpoint?: string
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
  /** Whether the provider understands RFC 8707 `resource` (neither GitHub nor Slack does). */
  resourceIndicators: boolean
  /** The authorization request parameters that carry the scopes. */
  scopeParams(scopes: string[]): Record<string, string>
  /** Rewrites a token endpoint answer into standard OAuth JSON (errors as HTTP 400 `{error}`). */
  normalizeToken?(status: number, body: Json): { status: number; body: Json }
  /** The provider's own revocation call. */
  revoke?(i: PresetRevokeInput): Promise<'revoked'>
}

const GITHUB_ERRORS: Record<string, string> = {
  bad_verification_code: 'invalid_grant',
  bad_refresh_token: 'invalid_grant',
  redirect_uri_mismatch: 'invalid_grant',
  incorrect_client_credentials: 'invalid_client',
  unverified_user_email: 'access_denied',
}

const SLACK_ERRORS: Record<string, string> = {
  invalid_code: 'invalid_grant',
  code_already_used: 'invalid_grant',
  code_expired: 'invalid_grant',
  invalid_refresh_token: 'invalid_grant',
  invalid_grant_type: 'unsupported_grant_type',
  bad_redirect_uri: 'invalid_grant',
  invalid_client_id: 'invalid_client',
  bad_client_secret: 'invalid_client',
}

/** GitHub answers errors as HTTP 200 with an `error` field, and lists scopes comma-separated. */
function normalizeGithub(status: number, body: Json): { status: number; body: Json } {
  if (typeof body.error === 'string') {
    return {
      status: status === 200 ? 400 : status,
      body: {
        error: GITHUB_ERRORS[body.error] ?? body.error,
        error_description: `GitHub: ${body.error}${typeof body.error_description === 'string' ? ` (${body.error_description})` : ''}`,
      },
    }
  }
  return { status, body: typeof body.scope === 'string' ? { ...body, scope: spaced(body.scope) } : body }
}

/**
 * Slack's oauth.v2.access: `{ok:false,error}` with HTTP 200 for errors; the user's token sits in
 * `authed_user` after an authorization (top level after a refresh), with token_type `user`.
 */
function normalizeSlack(status: number, body: Json): { status: number; body: Json } {
  if (body.ok === false || typeof body.error === 'string') {
    const e = typeof body.error === 'string' ? body.error : 'unknown_error'
    return {
      status: status === 200 ? 400 : status,
      body: { error: SLACK_ERRORS[e] ?? e, error_description: `Slack: ${e}` },
    }
  }
  const user = body.authed_user as Json | undefined
  const src = user && typeof user.access_token === 'string' ? user : body
  const out: Json = { access_token: src.access_token, token_type: 'Bearer' }
  if (typeof src.refresh_token === 'string') out.refresh_token = src.refresh_token
  if (typeof src.expires_in === 'number') out.expires_in = src.expires_in
  if (typeof src.scope === 'string') out.scope = spaced(src.scope)
  return { status, body: out }
}

function spaced(scope: string): string {
  return scope
    .split(/[\s,]+/)
    .filter(Boolean)
    .join(' ')
}

async function revokeGithub(i: PresetRevokeInput): Promise<'revoked'> {
  if (!i.accessToken) return 'revoked' // GitHub revokes grants by access token; nothing else to send
  if (!i.clientSecret)
    throw new OAuthError('revocation_failed', 'GitHub token revocation needs the client secret (basic auth)')
  const url = new URL(i.endpoint.replace('{client_id}', encodeURIComponent(i.clientId)))
  const what = `GitHub revocation endpoint ${describeEndpoint(url)}`
  let res: Response
  try {
    res = await i.fetch(url.href, {
      method: 'DELETE',
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
      headers: {
        accept: 'application/vnd.github+json',
        'x-github-api-version': '2022-11-28',
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${i.clientId}:${i.clientSecret}`).toString('base64')}`,
      },
      body: JSON.stringify({ access_token: i.accessToken }),
    })
  } catch (err) {
    throw toOAuthError(err, what)
  }
  await res.body?.cancel().catch(() => undefined)
  // 404: the token is already unknown to GitHub, which is what revoking wanted
  if (res.status === 204 || res.status === 404) return 'revoked'
  throw new OAuthError('revocation_failed', `${what} answered HTTP ${res.status}`)
}

async function revokeSlack(i: PresetRevokeInput): Promise<'revoked'> {
  if (!i.accessToken) return 'revoked'
  const url = new URL(i.endpoint)
  const what = `Slack auth.revoke ${describeEndpoint(url)}`
  let body: Json | undefined
  try {
    const res = await i.fetch(url.href, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
      headers: {
        authorization: `Bearer ${i.accessToken}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: '',
    })
    body = (await res.json().catch(() => undefined)) as Json | undefined
  } catch (err) {
    throw toOAuthError(err, what)
  }
  if (body?.ok === true) return 'revoked'
  const e = typeof body?.error === 'string' ? body.error : undefined
  // already dead tokens are as revoked as they will get
  if (e === 'invalid_auth' || e === 'token_revoked' || e === 'account_inactive') return 'revoked'
  throw new OAuthError(
    'revocation_failed',
    `${what} ${e ? `answered ${safeText(e, 64)}` : 'answered something other than Slack JSON'}`,
  )
}

/** Known providers: `provider: github | slack` in a connector's oauth2 auth. */
export const PROVIDER_PRESETS: Readonly<Record<string, ProviderPreset>> = {
  github: {
    authorizationEndpoint: 'https://github.com/login/oauth/authorize',
    tokenEndpoint: 'https://github.com/login/oauth/access_token',
    revocationEndpoint: 'https://api.github.com/applications/{client_id}/token',
    tokenEndpointAuthMethod: 'client_secret_post',
    resourceIndicators: false,
    scopeParams: (scopes): Record<string, string> => (scopes.length ? { scope: scopes.join(' ') } : {}),
    normalizeToken: normalizeGithub,
    revoke: revokeGithub,
  },
  slack: {
    authorizationEndpoint: 'https://slack.com/oauth/v2/authorize',
    tokenEndpoint: 'https://slack.com/api/oauth.v2.access',
    revocationEndpoint: 'https://slack.com/api/auth.revoke',
    tokenEndpointAuthMethod: 'client_secret_post',
    resourceIndicators: false,
    // per-user tokens: the scopes are user scopes, comma-separated
    scopeParams: (scopes): Record<string, string> => (scopes.length ? { user_scope: scopes.join(',') } : {}),
    normalizeToken: normalizeSlack,
    revoke: revokeSlack,
  },
}

/**
 * A fetch for a preset's token endpoint: asks for JSON and rewrites the provider's answers into
 * standard OAuth JSON before openid-client reads them. Non-JSON answers pass through unchanged
 * (openid-client then reports them as such).
 */
export function normalizingFetch(
  preset: ProviderPreset,
  tokenEndpoint: string,
  base: (url: string, init: RequestInit) => Promise<Response>,
): (url: string, init: RequestInit) => Promise<Response> {
  const target = describeEndpoint(tokenEndpoint)
  return async (url, init) => {
    if (!preset.normalizeToken || describeEndpoint(url) !== target) return base(url, init)
    const headers = new Headers(init.headers)
    headers.set('accept', 'application/json')
    const res = await base(url, { ...init, headers })
    const text = await res.text()
    let json: Json | undefined
    try {
      const v = JSON.parse(text) as unknown
      if (v && typeof v === 'object' && !Array.isArray(v)) json = v as Json
    } catch {
      json = undefined
    }
    if (!json) return new Response(text, { status: res.status, headers: res.headers })
    const n = preset.normalizeToken(res.status, json)
    return new Response(JSON.stringify(n.body), {
      status: n.status,
      headers: { 'content-type': 'application/json' },
    })
  }
}
