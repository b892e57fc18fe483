import { createHash } from 'node:crypto'
import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type FetchImplementation,
  type JWTPayload,
} from 'jose'
import { LRUCache } from 'lru-cache'
import { fetch as undiciFetch, type Dispatcher } from 'undici'
import type { IssuerConfig } from '../config.js'
import { ROLES, type Principal, type Role } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { NAME_RE } from '../manifests/schema.js'
import { assertPublicUrl, createGuardedAgent } from '../net/ssrf.js'

/** Why authentication failed: recorded in the audit row (never the token), not shown beyond the message. */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'too_long'
  | 'unknown_key'
  | 'no_issuers'
  | 'unknown_issuer'
  | 'algorithm'
  | 'unknown_kid'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'
  | 'invalid_claims'
  | 'no_tenant'
  | 'unknown_tenant'
  | 'no_role'

/** An authentication failure: 401 (or 403 for a valid token of a user Gatehouse will not admit). */
export class AuthError extends GatewayError {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
    status: 401 | 403 = 401,
  ) {
    super(status === 401 ? 'unauthenticated' : 'forbidden', message)
    this.name = 'AuthError'
  }
}

/** What a verified access token says about its user; cached by token until it expires. */
export interface VerifiedUser {
  tenant: string
  principal: Principal
  roles: Role[]
  scopes: string[]
  scopesEnforced: boolean
  /** The token's `aud` values. */
  aud: string[]
  /** The issuer's `audience` override; absent: the gateway's resource URLs decide. */
  audiences?: string[]
  /** Expiry, epoch ms, skew included. */
  expiresAtMs: number
}

export interface OidcVerifierOptions {
  issuers: readonly IssuerConfig[]
  /** Whether a tenant exists (a user naming an unknown tenant is refused). */
  tenantExists(tenant: string): Promise<boolean>
  /** Lets discovered JWKS URLs on another origin than their issuer reach private addresses. */
  allowPrivateNetwork: boolean
  logger: Logger
  /** Verified tokens kept in memory. */
  cacheEntries?: number
  /** Timeout of discovery and JWKS requests. */
  fetchTimeoutMs?: number
  /** After a failed discovery, tokens of that issuer fail fast for this long. */
  discoveryRetryMs?: number
}

interface IssuerState {
  cfg: IssuerConfig
  id: string
  jwks?: ReturnType<typeof createRemoteJWKSet>
  discovering?: Promise<ReturnType<typeof createRemoteJWKSet>>
  failedAtMs?: number
  failure?: string
}

const MAX_DISCOVERY_BYTES = 256 * 1024

/** The default issuer id: stable, short, derived from the issuer URL. */
export function defaultIssuerId(issuer: string): string {
  return 'i' + createHash('sha256').update(issuer).digest('hex').slice(0, 10)
}

/** C0 control characters or DEL. */
export function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

/** A claim by name, or by dotted path (`realm_access.roles`) when no claim has that exact name. */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (path in payload) return payload[path]
  let cur: unknown = payload
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

/** Strings of a claim that is a string (space- or comma-separated) or an array of strings. */
function stringsOf(v: unknown): string[] {
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean)
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string' && x.length > 0)
  return []
}

/**
 * Validates JWT access tokens of the configured OIDC issuers with jose: signature against the
 * issuer's JWKS (cached by jose, refetched on an unknown `kid` at most every 30 s), exact `iss`,
 * `exp`/`nbf` with the issuer's clock skew, and only the issuer's allowed algorithms. The
 * audience is checked per request by the caller (it depends on the resource asked for).
 */
export class OidcVerifier {
  private readonly byIssuer = new Map<string, IssuerState>()
  private readonly cache: LRUCache<string, VerifiedUser>
  private readonly tenantCache = new LRUCache<string, boolean>({ max: 10_000, ttl: 30_000 })
  private readonly fetchTimeoutMs: number
  private readonly discoveryRetryMs: number
  private guarded?: Dispatcher

  constructor(private readonly opts: OidcVerifierOptions) {
    for (const cfg of opts.issuers)
      this.byIssuer.set(cfg.issuer, { cfg, id: cfg.id ?? defaultIssuerId(cfg.issuer) })
    // Bounded by count and by bytes: tokens may be up to 8 KiB each.
    this.cache = new LRUCache({
      max: opts.cacheEntries ?? 10_000,
      maxSize: 16 * 1024 * 1024,
      sizeCalculation: (_v, token) => token.length + 512,
    })
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? 5_000
    this.discoveryRetryMs = opts.discoveryRetryMs ?? 10_000
  }

  get configured(): boolean {
    return this.byIssuer.size > 0
  }

  /** A verified token from the cache, if it is there and not expired. */
  cached(token: string, nowMs = Date.now()): VerifiedUser | undefined {
    const hit = this.cache.get(token)
    if (hit && hit.expiresAtMs > nowMs) return hit
    return undefined
  }

  async verify(token: string): Promise<VerifiedUser> {
    const hit = this.cached(token)
    if (hit) return hit
    if (!this.configured)
      throw new AuthError('no_issuers', 'JWT bearer tokens need a configured OIDC issuer; none is configured')
    let header: ReturnType<typeof decodeProtectedHeader>
    let claims: JWTPayload
    try {
      header = decodeProtectedHeader(token)
      claims = decodeJwt(token)
    } catch {
      throw new AuthError('malformed', 'the bearer token is not a well-formed JWT')
    }
    const state = typeof claims.iss === 'string' ? this.byIssuer.get(claims.iss) : undefined
    if (!state) throw new AuthError('unknown_issuer', 'the token was not issued by a trusted issuer')
    const { cfg } = state
    if (typeof header.alg !== 'string' || !(cfg.algorithms as string[]).includes(header.alg))
      throw new AuthError(
        'algorithm',
        `token algorithm ${typeof header.alg === 'string' ? header.alg.slice(0, 20) : typeof header.alg} is not allowed`,
      )
    const jwks = await this.jwksOf(state)
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, jwks, {
        issuer: cfg.issuer,
        algorithms: cfg.algorithms,
        clockTolerance: cfg.clockSkewSeconds,
        requiredClaims: ['exp', 'sub'],
      }))
    } catch (err) {
      throw this.mapJoseError(err)
    }
    const user = await this.toUser(state, payload)
    // Until it expires, and at most an hour (a far-future exp must not pin it forever).
    this.cache.set(token, user, {
      ttl: Math.floor(Math.min(Math.max(1, user.expiresAtMs - Date.now()), 3_600_000)),
    })
    return user
  }

  /** Forget cached tokens (tests; after an issuer's configuration changes). */
  invalidate(): void {
    this.cache.clear()
    this.tenantCache.clear()
  }

  private mapJoseError(err: unknown): GatewayError {
    if (err instanceof errors.JWTExpired) return new AuthError('expired', 'the token has expired')
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'nbf') return new AuthError('not_yet_valid', 'the token is not valid yet')
      if (err.claim === 'iss') return new AuthError('unknown_issuer', 'the token issuer does not match')
      return new AuthError('invalid_claims', `the token's ${err.claim} claim is invalid`)
    }
    if (err instanceof errors.JWKSNoMatchingKey)
      return new AuthError('unknown_kid', "no key of the issuer's JWKS matches the token")
    if (err instanceof errors.JWSSignatureVerificationFailed)
      return new AuthError('bad_signature', 'the token signature is invalid')
    if (err instanceof errors.JOSEAlgNotAllowed)
      return new AuthError('algorithm', 'the token algorithm is not allowed')
    if (err instanceof errors.JWKSTimeout)
      return new GatewayError('unavailable', 'the OIDC issuer did not answer in time; try again')
    if (err instanceof errors.JOSEError || err instanceof TypeError)
      return new AuthError('malformed', 'the bearer token is not a valid JWT')
    this.opts.logger.warn({ err }, 'JWT verification failed unexpectedly')
    return new GatewayError('unavailable', 'cannot verify the token right now; try again')
  }

  private async toUser(state: IssuerState, p: JWTPayload): Promise<VerifiedUser> {
    const { cfg } = state
    // Subjects end up in owner ids, audit rows and logs: printable, at most 255 characters.
    if (typeof p.sub !== 'string' || p.sub.length === 0 || p.sub.length > 255 || hasControlChars(p.sub))
      throw new AuthError('invalid_claims', 'the token has no usable sub claim')
    let tenant = cfg.tenant
    if (tenant === undefined) {
      const v = claimAt(p, cfg.tenantClaim!)
      if (typeof v !== 'string' || !v)
        throw new AuthError('no_tenant', `the token has no ${cfg.tenantClaim} claim naming a tenant`)
      tenant = v
    }
    if (!NAME_RE.test(tenant) || !(await this.tenantKnown(tenant)))
      throw new AuthError('unknown_tenant', 'the tenant named by the token is not provisioned here', 403)
    const roles = new Set<Role>()
    for (const v of stringsOf(claimAt(p, cfg.rolesClaim))) {
      const mapped = cfg.roleMap ? cfg.roleMap[v] : v
      if (mapped && (ROLES as readonly string[]).includes(mapped)) roles.add(mapped as Role)
    }
    if (roles.size === 0) {
      if (cfg.defaultRole === 'none')
        throw new AuthError('no_role', 'the token grants no Gatehouse role', 403)
      roles.add(cfg.defaultRole as Role)
    }
    const scopes = [...new Set([...stringsOf(p.scope), ...stringsOf(p.scp)])].filter((s) => !s.includes(','))
    const name = [p.name, p.preferred_username, p.email].find((x) => typeof x === 'string' && x) as
      string | undefined
    const aud = typeof p.aud === 'string' ? [p.aud] : Array.isArray(p.aud) ? p.aud : []
    return {
      tenant,
      principal: { kind: 'user', id: `${state.id}:${p.sub}`, ...(name ? { name: name.slice(0, 200) } : {}) },
      roles: [...roles],
      scopes,
      scopesEnforced: cfg.requireScopes,
      aud,
      ...(cfg.audience !== undefined
        ? { audiences: typeof cfg.audience === 'string' ? [cfg.audience] : cfg.audience }
        : {}),
      expiresAtMs: (p.exp! + cfg.clockSkewSeconds) * 1000,
    }
  }

  private async tenantKnown(tenant: string): Promise<boolean> {
    const hit = this.tenantCache.get(tenant)
    if (hit !== undefined) return hit
    const ok = await this.opts.tenantExists(tenant)
    this.tenantCache.set(tenant, ok, ok ? {} : { ttl: 5_000 })
    return ok
  }

  private async jwksOf(state: IssuerState): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (state.jwks) return state.jwks
    if (state.failedAtMs !== undefined && Date.now() - state.failedAtMs < this.discoveryRetryMs)
      throw new GatewayError(
        'unavailable',
        `the OIDC issuer is unreachable (${state.failure}); try again later`,
      )
    state.discovering ??= this.discover(state).then(
      (jwks) => {
        state.jwks = jwks
        state.discovering = undefined
        return jwks
      },
      (err: unknown) => {
        state.discovering = undefined
        state.failedAtMs = Date.now()
        state.failure = err instanceof Error ? err.message : String(err)
        this.opts.logger.warn({ issuer: state.cfg.issuer, err }, 'OIDC discovery failed')
        throw new GatewayError(
          'unavailable',
          `the OIDC issuer is unreachable (${state.failure}); try again later`,
        )
      },
    )
    return state.discovering
  }

  /** The JWKS URL from config or the issuer's discovery document (OIDC, then RFC 8414). */
  private async discover(state: IssuerState): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const { cfg } = state
    const issuer = new URL(cfg.issuer)
    let jwksUri = cfg.jwksUri
    if (!jwksUri) {
      const trimmed = cfg.issuer.replace(/\/+$/, '')
      const path = issuer.pathname.replace(/\/+$/, '')
      const candidates = [
        `${trimmed}/.well-known/openid-configuration`,
        `${issuer.origin}/.well-known/oauth-authorization-server${path}`,
      ]
      let meta: Record<string, unknown> | undefined
      let lastError = ''
      for (const url of candidates) {
        try {
          meta = await this.fetchJson(url)
          break
        } catch (err) {
          lastError = err instanceof Error ? err.message : String(err)
        }
      }
      if (!meta) throw new Error(`discovery failed: ${lastError}`)
      // Mix-up defence: the document must be the issuer's own.
      if (meta.issuer !== cfg.issuer)
        throw new Error(`discovery document names issuer ${String(meta.issuer)}, expected ${cfg.issuer}`)
      if (typeof meta.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri')
      jwksUri = meta.jwks_uri
    }
    const url = new URL(jwksUri)
    // A JWKS on the issuer's own origin is as trusted as the configured issuer; one learned from
    // discovery on another origin passes the SSRF guard.
    const learnedElsewhere = !cfg.jwksUri && url.origin !== issuer.origin
    let fetchImpl: FetchImplementation | undefined
    if (learnedElsewhere && !this.opts.allowPrivateNetwork) {
      assertPublicUrl(url, { allowPrivate: false })
      this.guarded ??= createGuardedAgent({ allowPrivate: false })
      const dispatcher = this.guarded
      fetchImpl = (u, options) =>
        undiciFetch(u, { ...(options as object), dispatcher }) as unknown as Promise<Response>
    }
    return createRemoteJWKSet(url, {
      timeoutDuration: this.fetchTimeoutMs,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
      ...(fetchImpl ? { [customFetch]: fetchImpl } : {}),
    })
  }

  private async fetchJson(url: string): Promise<Record<string, unknown>> {
    const res = await fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.fetchTimeoutMs),
    })
    if (!res.ok) {
      await res.body?.cancel()
      throw new Error(`${url} answered ${res.status}`)
    }
    const text = await res.text()
    if (text.length > MAX_DISCOVERY_BYTES) throw new Error(`${url}: document too large`)
    const v: unknown = JSON.parse(text)
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${url}: not a JSON object`)
    return v as Record<string, unknown>
  }
}
