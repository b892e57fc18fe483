import type * as client from 'openid-client'
import { OAuthError } from './errors.js'

/** Tokens for one user at one upstream. */
export interface TokenSet {
  accessToken: string
  tokenType: string
  refreshToken?: string
  /** Epoch milliseconds. */
  expiresAt?: number
  scopes?: string[]
  idToken?: string
}

type TokenResponse = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers

/**
 * A token endpoint answer as a TokenSet. Scopes: the granted `scope`, else the requested ones
 * (RFC 6749 §5.1: an omitted scope means the requested scope was granted).
 */
export function toTokenSet(
  r: TokenResponse,
  what: string,
  requested: string[] | undefined,
  previousRefresh?: string,
): TokenSet {
  if (!r.access_token) throw new OAuthError('invalid_response', `${what} answered no access_token`)
  const type = r.token_type.toLowerCase()
  const expiresIn = r.expiresIn()
  const scopes = typeof r.scope === 'string' ? r.scope.split(/\s+/).filter(Boolean) : requested
  const refresh = r.refresh_token ?? previousRefresh
  return {
    accessToken: r.access_token,
    tokenType: type === 'bearer' ? 'Bearer' : type === 'dpop' ? 'DPoP' : r.token_type,
    ...(refresh ? { refreshToken: refresh } : {}),
    ...(expiresIn !== undefined ? { expiresAt: Date.now() + expiresIn * 1000 } : {}),
    ...(scopes?.length ? { scopes } : {}),
    ...(r.id_token ? { idToken: r.id_token } : {}),
  }
}
