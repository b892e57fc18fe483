import { LRUCache } from 'lru-cache'
import { createContext, type CallContext, type Principal, type Role, type TraceContext } from '../context.js'
import type { ApiKeyRecord, ApiKeyStore } from '../store/types.js'
import { API_KEY_PREFIX, hashApiKey } from './api-keys.js'
import { AuthError, type OidcVerifier, type VerifiedUser } from './oidc.js'

export interface AuthenticatorOptions {
  keys: ApiKeyStore
  /** JWT access tokens of the configured OIDC issuers; absent or without issuers: API keys only. */
  oidc?: OidcVerifier
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
  /** The `aud` values acceptable for this request (the resource it addresses). */
  audiences?: readonly string[]
}

/** Longest bearer token considered at all; anything longer is refused before hashing. */
const MAX_TOKEN_LENGTH = 8192

/**
 * Turns an Authorization header into a CallContext: a `gk_` API key (looked up by hash, cached
 * by key; revocation in this process takes effect at once, in other processes within
 * `cacheTtlMs`) or a JWT of a configured OIDC issuer (verified by the OidcVerifier, cached until
 * it expires; the audience is checked on every request against the resource it addresses).
 */
export class Authenticator {
  private readonly keys: ApiKeyStore
  private readonly oidc: OidcVerifier | undefined
  private readonly cache: LRUCache<string, ApiKeyRecord | false>
  private readonly negativeTtlMs: number
  /**
   * Bumped by invalidate(): a store lookup that was in flight across it read the keys as they
   * were before (a revocation it must not outlive), so its answer is read again and not cached.
   */
  private generation = 0

  constructor({
    keys,
    oidc,
    cacheTtlMs = 30_000,
    negativeTtlMs = 5_000,
    maxEntries = 10_000,
  }: AuthenticatorOptions) {
    this.keys = keys
    this.oidc = oidc
    this.negativeTtlMs = negativeTtlMs
    this.cache = new LRUCache({ max: maxEntries, ttl: cacheTtlMs })
  }

  async authenticate(authorization: string | undefined, meta: RequestMeta = {}): Promise<CallContext> {
    const token = parseBearer(authorization)
    if (!token.startsWith(API_KEY_PREFIX) && token.split('.').length === 3) {
      if (!this.oidc?.configured)
        throw new AuthError(
          'no_issuers',
          'JWT bearer tokens need a configured OIDC issuer; none is configured',
        )
      return userContext(await this.oidc.verify(token), meta)
    }
    const cached = this.cache.get(token)
    if (cached !== undefined) return keyContext(cached || undefined, meta)
    return keyContext(await this.lookup(token), meta)
  }

  /**
   * The context for credentials already known good (a cache hit), with no lookup and no
   * verification; undefined otherwise. Lets a rate-limited source keep using valid credentials.
   */
  cached(authorization: string | undefined, meta: RequestMeta = {}): CallContext | undefined {
    let token: string
    try {
      token = parseBearer(authorization)
    } catch {
      return undefined
    }
    try {
      // As authenticate(): a token with the API-key prefix is never taken for a JWT.
      const user = token.startsWith(API_KEY_PREFIX) ? undefined : this.oidc?.cached(token)
      if (user) return userContext(user, meta)
      const rec = this.cache.get(token)
      return rec ? keyContext(rec, meta) : undefined
    } catch {
      return undefined
    }
  }

  /** Forget cached decisions (after a key is revoked or created). */
  invalidate(): void {
    this.generation++
    this.cache.clear()
  }

  /**
   * Cached by the token itself (it is in this process's memory for the request anyway), so a
   * hit costs no hashing; the store only ever sees the hash. A lookup that an invalidate() overtook
   * (a key revoked while the store was answering) is read once more, so that revocation holds for
   * this request too, and its answer is cached only if no invalidate() overtook it either.
   */
  private async lookup(token: string): Promise<ApiKeyRecord | undefined> {
    const cached = this.cache.get(token)
    if (cached !== undefined) return cached || undefined
    const hash = hashApiKey(token)
    let generation = this.generation
    let record = await this.keys.lookupByHash(hash)
    if (generation !== this.generation) {
      generation = this.generation
      record = await this.keys.lookupByHash(hash)
    }
    if (generation !== this.generation) return record
    if (record) this.cache.set(token, record)
    else this.cache.set(token, false, { ttl: this.negativeTtlMs })
    return record
  }
}

/** What every request made with one key shares: built once per cached key record, not per request. */
interface KeyIdentity {
  readonly principal: Principal
  readonly roles: ReadonlySet<Role>
  readonly expiresAtMs: number
}
const identities = new WeakMap<ApiKeyRecord, KeyIdentity>()

function keyIdentity(record: ApiKeyRecord): KeyIdentity {
  let id = identities.get(record)
  if (!id) {
    id = {
      principal: Object.freeze({ kind: 'service' as const, id: record.id, name: record.name }),
      roles: new Set([record.role]),
      // An expiry that does not parse fails closed.
      expiresAtMs: record.expiresAt ? Date.parse(record.expiresAt) || -Infinity : Infinity,
    }
    identities.set(record, id)
  }
  return id
}

function keyContext(record: ApiKeyRecord | undefined, meta: RequestMeta): CallContext {
  if (!record) throw new AuthError('unknown_key', 'invalid or expired API key')
  const id = keyIdentity(record)
  if (id.expiresAtMs <= Date.now()) throw new AuthError('expired', 'invalid or expired API key')
  return createContext({
    tenant: record.tenant,
    principal: id.principal,
    roles: id.roles,
    scopes: record.scopes,
    // A key created without scopes is limited by its role alone.
    scopesEnforced: record.scopes.length > 0,
    operator: record.operator,
    requestId: meta.requestId,
    ...contextMeta(meta),
  })
}

function userContext(user: VerifiedUser, meta: RequestMeta): CallContext {
  if (user.expiresAtMs <= Date.now()) throw new AuthError('expired', 'the token has expired')
  const accepted = user.audiences ?? meta.audiences ?? []
  if (!user.aud.some((a) => accepted.includes(a)))
    throw new AuthError('wrong_audience', 'the token was not issued for this resource (audience mismatch)')
  return createContext({
    tenant: user.tenant,
    principal: user.principal,
    roles: user.roles,
    scopes: user.scopes,
    scopesEnforced: user.scopesEnforced,
    operator: false,
    requestId: meta.requestId,
    ...contextMeta(meta),
  })
}

function contextMeta(meta: RequestMeta): { trace?: TraceContext; signal?: AbortSignal } {
  return {
    ...(meta.trace ? { trace: meta.trace } : {}),
    ...(meta.signal ? { signal: meta.signal } : {}),
  }
}

export function parseBearer(authorization: string | undefined): string {
  if (!authorization) throw new AuthError('missing', 'missing Authorization header (Bearer <token>)')
  if (authorization.length > MAX_TOKEN_LENGTH + 64) throw new AuthError('too_long', 'bearer token too long')
  const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization)
  if (!m || !m[1]) throw new AuthError('malformed', 'Authorization header must be "Bearer <token>"')
  if (m[1].length > MAX_TOKEN_LENGTH) throw new AuthError('too_long', 'bearer token too long')
  return m[1]
}
