import { LRUCache } from 'lru-cache'
import { createContext, type CallContext, type TraceContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { ApiKeyRecord, ApiKeyStore } from '../store/types.js'
import { hashApiKey } from './api-keys.js'

export interface AuthenticatorOptions {
  keys: ApiKeyStore
  /** How long a positive key lookup is trusted in this process (revocation elsewhere waits this long). */
  cacheTtlMs?: number
  /** How long an unknown key is remembered, so a bad-key storm does not reach the database. */
  negativeTtlMs?: number
  maxEntries?: number
}

export interface RequestMeta {
  requestId?: string
  trace?: TraceContext
  signal?: AbortSignal
}

/** Longest bearer token considered at all; anything longer is refused before hashing. */
const MAX_TOKEN_LENGTH = 8192

/**
 * Turns an Authorization header into a CallContext. API key lookups are cached by key hash;
 * revocation in this process takes effect at once, in other processes within `cacheTtlMs`.
 */
export class Authenticator {
  private readonly keys: ApiKeyStore
  private readonly cache: LRUCache<string, ApiKeyRecord | false>
  private readonly negativeTtlMs: number

  constructor({
    keys,
    cacheTtlMs = 30_000,
    negativeTtlMs = 5_000,
    maxEntries = 10_000,
  }: AuthenticatorOptions) {
    this.keys = keys
    this.negativeTtlMs = negativeTtlMs
    this.cache = new LRUCache({ max: maxEntries, ttl: cacheTtlMs })
  }

  async authenticate(authorization: string | undefined, meta: RequestMeta = {}): Promise<CallContext> {
    const token = parseBearer(authorization)
    const record = await this.lookup(token)
    if (!record) throw new GatewayError('unauthenticated', 'invalid or expired API key')
    if (record.expiresAt && record.expiresAt <= new Date().toISOString()) {
      throw new GatewayError('unauthenticated', 'invalid or expired API key')
    }
    return createContext({
      tenant: record.tenant,
      principal: { kind: 'service', id: record.id, name: record.name },
      roles: [record.role],
      scopes: record.scopes,
      operator: record.operator,
      ...meta,
    })
  }

  /** Forget cached decisions (after a key is revoked or created). */
  invalidate(): void {
    this.cache.clear()
  }

  /**
   * Cached by the token itself (it is in this process's memory for the request anyway), so a
   * hit costs no hashing; the store only ever sees the hash.
   */
  private async lookup(token: string): Promise<ApiKeyRecord | undefined> {
    const cached = this.cache.get(token)
    if (cached !== undefined) return cached || undefined
    const record = await this.keys.lookupByHash(hashApiKey(token))
    if (record) this.cache.set(token, record)
    else this.cache.set(token, false, { ttl: this.negativeTtlMs })
    return record
  }
}

export function parseBearer(authorization: string | undefined): string {
  if (!authorization)
    throw new GatewayError('unauthenticated', 'missing Authorization header (Bearer <API key>)')
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization)
  if (!m || !m[1]) throw new GatewayError('unauthenticated', 'Authorization header must be "Bearer <token>"')
  if (m[1].length > MAX_TOKEN_LENGTH) throw new GatewayError('unauthenticated', 'bearer token too long')
  if (m[1].split('.').length === 3 && !m[1].startsWith('gk_')) {
    throw new GatewayError(
      'unauthenticated',
      'JWT bearer tokens need a configured OIDC issuer; none is configured',
    )
  }
  return m[1]
}
