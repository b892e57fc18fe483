import { GatewayError } from '../../errors.js'
import { isEnvelope, isEnvelopeString, type Envelope } from '../../vault/envelope.js'
import type {
  ConnectionRecord,
  ConnectionUpdate,
  NewConnection,
  OAuthClientRecord,
  OAuthStateRecord,
} from '../connections.js'
import { SEALED } from './a2a.js'

/** Rows of the connection tables as both stores read them, their mapping to records, and input checks. */

export interface ConnectionRow {
  id: string
  tenant: string
  user_id: string
  connector: string
  provider: string
  account: string | null
  scopes: string
  key_id: string
  wrapped_key: string
  ciphertext: string
  expires_at: string | null
  has_refresh_token: number | boolean
  refresh_locked_until: string | null
  version: number
  created_at: string
  updated_at: string
}

export interface StateRow {
  id: string
  tenant: string
  user_id: string
  connector: string
  sealed_verifier: string
  redirect_uri: string
  scopes: string
  issuer: string
  resource: string | null
  return_to: string | null
  expires_at: string
  created_at: string
}

export interface ClientRow {
  tenant: string
  connector: string
  issuer: string
  client_id: string
  sealed_secret: string | null
  token_endpoint_auth_method: string | null
  registration: string
  created_at: string
}

export function toConnection(r: ConnectionRow): ConnectionRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    userId: r.user_id,
    connector: r.connector,
    provider: r.provider,
    ...(r.account !== null ? { account: r.account } : {}),
    scopes: JSON.parse(r.scopes) as string[],
    sealed: { keyId: r.key_id, wrappedKey: r.wrapped_key, ciphertext: r.ciphertext },
    ...(r.expires_at !== null ? { expiresAt: r.expires_at } : {}),
    hasRefreshToken: r.has_refresh_token === true || r.has_refresh_token === 1,
    ...(r.refresh_locked_until ? { refreshLockedUntil: r.refresh_locked_until } : {}),
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

export function toState(r: StateRow): OAuthStateRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    userId: r.user_id,
    connector: r.connector,
    sealedVerifier: r.sealed_verifier,
    redirectUri: r.redirect_uri,
    scopes: JSON.parse(r.scopes) as string[],
    issuer: r.issuer,
    ...(r.resource !== null ? { resource: r.resource } : {}),
    ...(r.return_to !== null ? { returnTo: r.return_to } : {}),
    expiresAt: r.expires_at,
    createdAt: r.created_at,
  }
}

export function toClient(r: ClientRow): OAuthClientRecord {
  return {
    tenant: r.tenant,
    connector: r.connector,
    issuer: r.issuer,
    clientId: r.client_id,
    ...(r.sealed_secret !== null ? { sealedSecret: r.sealed_secret } : {}),
    ...(r.token_endpoint_auth_method !== null
      ? { tokenEndpointAuthMethod: r.token_endpoint_auth_method }
      : {}),
    registration: JSON.parse(r.registration) as Record<string, unknown>,
    createdAt: r.created_at,
  }
}

/** A timestamp as the canonical ISO-8601 UTC text both stores compare and return. */
export function isoOf(v: string, field: string): string {
  const t = Date.parse(v)
  if (Number.isNaN(t)) throw new GatewayError('bad_request', `${field} is not an ISO-8601 timestamp`)
  return new Date(t).toISOString()
}

function scopesJson(scopes: readonly string[]): string {
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string'))
    throw new GatewayError('bad_request', 'scopes must be a list of strings')
  return JSON.stringify(scopes)
}

// A plaintext token handed to the store is a bug in the gateway, never the caller's fault.
export function sealedEnvelope(e: Envelope): Envelope {
  if (!isEnvelope(e))
    throw new GatewayError('internal', 'connection tokens must be stored as an envelope (sealEnvelope)')
  return { keyId: e.keyId, wrappedKey: e.wrappedKey, ciphertext: e.ciphertext }
}

/** Column values of a new connection, in the order of CONNECTION_COLUMNS. */
export function connectionValues(c: NewConnection, now: string): unknown[] {
  for (const [k, v] of Object.entries({
    id: c.id,
    tenant: c.tenant,
    userId: c.userId,
    connector: c.connector,
  }))
    if (typeof v !== 'string' || !v)
      throw new GatewayError('bad_request', `connection ${k} must be a non-empty string`)
  const e = sealedEnvelope(c.sealed)
  return [
    c.id,
    c.tenant,
    c.userId,
    c.connector,
    c.provider,
    c.account ?? null,
    scopesJson(c.scopes),
    e.keyId,
    e.wrappedKey,
    e.ciphertext,
    c.expiresAt !== undefined ? isoOf(c.expiresAt, 'expiresAt') : null,
    c.hasRefreshToken,
    1,
    now,
    now,
  ]
}

export const CONNECTION_COLUMNS =
  'id, tenant, user_id, connector, provider, account, scopes, key_id, wrapped_key, ciphertext, expires_at, has_refresh_token, version, created_at, updated_at'

/** The columns an update sets (name → value), unchanged fields left out. */
export function updateValues(u: ConnectionUpdate): [string, unknown][] {
  const e = sealedEnvelope(u.sealed)
  const set: [string, unknown][] = [
    ['key_id', e.keyId],
    ['wrapped_key', e.wrappedKey],
    ['ciphertext', e.ciphertext],
  ]
  if (u.expiresAt !== undefined)
    set.push(['expires_at', u.expiresAt === null ? null : isoOf(u.expiresAt, 'expiresAt')])
  if (u.scopes !== undefined) set.push(['scopes', scopesJson(u.scopes)])
  if (u.hasRefreshToken !== undefined) set.push(['has_refresh_token', u.hasRefreshToken])
  if (u.account !== undefined) set.push(['account', u.account])
  if (u.refreshLockedUntil !== undefined)
    set.push([
      'refresh_locked_until',
      u.refreshLockedUntil === null ? null : isoOf(u.refreshLockedUntil, 'refreshLockedUntil'),
    ])
  return set
}

const STATE_ID = /^[0-9a-f]{64}$/

/** The state id must be a sha256 hex: a raw state parameter must never reach the table. */
export function stateId(id: string): string {
  if (typeof id !== 'string' || !STATE_ID.test(id))
    throw new GatewayError('internal', 'OAuth state ids are the sha256 hex of the state parameter')
  return id
}

export function stateValues(s: OAuthStateRecord): unknown[] {
  if (!isEnvelopeString(s.sealedVerifier) && !SEALED.test(s.sealedVerifier))
    throw new GatewayError('internal', 'the PKCE verifier must be stored sealed (sealString)')
  return [
    stateId(s.id),
    s.tenant,
    s.userId,
    s.connector,
    s.sealedVerifier,
    s.redirectUri,
    scopesJson(s.scopes),
    s.issuer,
    s.resource ?? null,
    s.returnTo ?? null,
    isoOf(s.expiresAt, 'expiresAt'),
    isoOf(s.createdAt, 'createdAt'),
  ]
}

export const STATE_COLUMNS =
  'id, tenant, user_id, connector, sealed_verifier, redirect_uri, scopes, issuer, resource, return_to, expires_at, created_at'

export function clientSecret(sealed: string): string {
  if (!isEnvelopeString(sealed))
    throw new GatewayError('internal', 'OAuth client secrets must be stored sealed (sealString, ev1.…)')
  return sealed
}

export function clientValues(r: OAuthClientRecord): unknown[] {
  return [
    r.tenant,
    r.connector,
    r.issuer,
    r.clientId,
    r.sealedSecret !== undefined ? clientSecret(r.sealedSecret) : null,
    r.tokenEndpointAuthMethod ?? null,
    JSON.stringify(r.registration ?? {}),
    isoOf(r.createdAt, 'createdAt'),
  ]
}

export const CLIENT_COLUMNS =
  'tenant, connector, issuer, client_id, sealed_secret, token_endpoint_auth_method, registration, created_at'
