import * as client from 'openid-client'
import { GatewayError, type ErrorCode } from '../errors.js'

/** How an OAuth failure surfaces through the gateway's one error table. */
const GATEWAY_CODE: Record<string, ErrorCode> = {
  access_denied: 'forbidden',
  invalid_grant: 'unauthenticated',
  invalid_state: 'bad_request',
  invalid_callback: 'bad_request',
  insecure_endpoint: 'bad_request',
  temporarily_unavailable: 'upstream_unavailable',
  unreachable: 'upstream_unavailable',
  timeout: 'timeout',
}

/**
 * A failure of the upstream OAuth flow. `oauthCode` is the OAuth error code when the
 * authorization server gave one (invalid_grant, access_denied, …) or the gateway's own
 * (invalid_response, discovery_failed, registration_failed, unreachable, …). Messages name the
 * endpoint and never carry tokens, codes, verifiers or client secrets.
 */
export class OAuthError extends GatewayError {
  readonly oauthCode: string

  constructor(oauthCode: string, message: string, options: { code?: ErrorCode; cause?: unknown } = {}) {
    super(options.code ?? GATEWAY_CODE[oauthCode] ?? 'upstream_error', message, {
      details: { oauthCode },
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    })
    this.name = 'OAuthError'
    this.oauthCode = oauthCode
  }
}

/** scheme://host/path of an endpoint: enough to name it without echoing a query (which may hold secrets). */
export { safeUrl as describeEndpoint } from '../net/url.js'

/** Text an upstream chose (error_description): one line, printable, bounded. */
export function safeText(v: unknown, max = 200): string {
  const s = typeof v === 'string' ? v : ''
  const clean = s.replace(/[^\x20-\x7e]/g, ' ').trim()
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}

function fromClientError(err: client.ClientError, what: string): OAuthError {
  const inner = err.cause instanceof Error ? err.cause.message : undefined
  const res = err.cause instanceof Response ? err.cause : undefined
  switch (err.code) {
    case 'OAUTH_RESPONSE_IS_NOT_JSON':
      return new OAuthError(
        'invalid_response',
        `${what} answered with a non-JSON body (content-type ${safeText(res?.headers.get('content-type') ?? 'none', 80)}, HTTP ${res?.status ?? '?'})`,
      )
    case 'OAUTH_RESPONSE_IS_NOT_CONFORM':
      return new OAuthError(
        res && res.status >= 500 ? 'temporarily_unavailable' : 'invalid_response',
        `${what} answered HTTP ${res?.status ?? '?'} without an OAuth error body`,
      )
    case 'OAUTH_HTTP_REQUEST_FORBIDDEN':
      return new OAuthError(
        'insecure_endpoint',
        `${what} is not https; only loopback tests and admin-written http URLs may use allowInsecureRequests`,
      )
    case 'OAUTH_UNSUPPORTED_OPERATION':
      return new OAuthError('invalid_response', `${what} answered with an unsupported token_type`)
    case 'OAUTH_TIMEOUT':
      return new OAuthError('timeout', `${what} did not answer in time`)
    case 'OAUTH_INVALID_RESPONSE': {
      if (inner?.includes('"state"'))
        return new OAuthError('invalid_state', `the callback's state does not match this connection attempt`)
      if (inner?.includes('"iss"'))
        return new OAuthError(
          'invalid_callback',
          `the callback's iss parameter does not name the expected issuer`,
        )
      return new OAuthError('invalid_response', `${what} answered an invalid response: ${safeText(inner)}`)
    }
    default:
      return new OAuthError('invalid_response', `${what}: ${safeText(inner ?? err.message)}`)
  }
}

/**
 * Maps whatever openid-client, fetch or the SSRF guard threw into an OAuthError naming `what`
 * (e.g. "token endpoint https://as.example/token"). Causes are dropped on purpose: response
 * objects and bodies can hold tokens.
 */
export function toOAuthError(err: unknown, what: string): OAuthError {
  if (err instanceof OAuthError) return err
  if (err instanceof client.ResponseBodyError) {
    const desc = safeText(err.error_description)
    return new OAuthError(
      safeText(err.error, 64) || 'invalid_response',
      `${what} answered ${safeText(err.error, 64)}${desc ? `: ${desc}` : ''} (HTTP ${err.status})`,
    )
  }
  if (err instanceof client.AuthorizationResponseError) {
    const desc = safeText(err.error_description)
    return new OAuthError(
      safeText(err.error, 64) || 'invalid_callback',
      `the authorization server answered ${safeText(err.error, 64)}${desc ? `: ${desc}` : ''}`,
    )
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const code = err.cause[0]?.parameters.error
    return new OAuthError(
      safeText(code, 64) || 'invalid_client',
      `${what} refused the client (HTTP ${err.status}${code ? `, ${safeText(code, 64)}` : ''})`,
    )
  }
  if (err instanceof client.ClientError) return fromClientError(err, what)
  if (err instanceof GatewayError)
    return new OAuthError('unreachable', `${what}: ${err.message}`, { code: err.code })
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    return new OAuthError('timeout', `${what} did not answer in time`)
  if (err instanceof TypeError) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    const guard = cause instanceof GatewayError ? cause.message : undefined
    return new OAuthError(
      'unreachable',
      `cannot reach ${what}: ${safeText(guard ?? cause?.code ?? cause?.message ?? err.message)}`,
    )
  }
  return new OAuthError('invalid_response', `${what} failed: ${safeText((err as Error)?.message)}`)
}
