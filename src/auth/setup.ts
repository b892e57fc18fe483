import type { GatewayConfig } from '../config.js'
import { systemContext } from '../context.js'
import type { Logger } from '../log.js'
import type { Store } from '../store/types.js'
import { auditId, type AuditWriter } from '../telemetry/audit.js'
import { Authenticator } from './authenticator.js'
import { OidcVerifier, type AuthFailureReason } from './oidc.js'
import { FailureLimiter } from './rate-limit.js'
import { ResourceServer } from './resource.js'

/** Audit rows of failed authentications go to this pseudo-tenant (not a valid tenant name): operators read them with `?tenant=_gateway`. */
export const AUTH_AUDIT_TENANT = '_gateway'

export interface AuthFailure {
  source: string
  /** `METHOD /path/pattern` of the route asked for. */
  route: string
  reason: AuthFailureReason | 'rate_limited'
  requestId: string
}

/** Everything the HTTP layer needs to authenticate, challenge and limit callers. */
export interface GatewayAuth {
  authenticator: Authenticator
  resource: ResourceServer
  limiter: FailureLimiter
  trustProxy: boolean
  /** Audits a failed authentication (never the token). */
  recordFailure(f: AuthFailure): void
}

/** Builds the authentication side of the gateway from its config. */
export async function createAuth({
  config,
  store,
  audit,
  logger,
}: {
  config: GatewayConfig
  store: Store
  audit: AuditWriter
  logger: Logger
}): Promise<GatewayAuth> {
  const op = systemContext('default')
  if (config.oidc.issuers.length && !config.publicUrl && /^(0\.0\.0\.0|::|\[::\])$/.test(config.host))
    logger.warn(
      'OIDC issuers are configured but publicUrl is not: token audiences are checked against the listen address; set publicUrl',
    )
  // A tenant an issuer is pinned to exists from the start.
  for (const i of config.oidc.issuers) if (i.tenant) await store.tenants.ensure(op, i.tenant)
  const oidc = new OidcVerifier({
    issuers: config.oidc.issuers,
    tenantExists: async (t) => (await store.tenants.get(op, t)) !== undefined,
    allowPrivateNetwork: config.allowPrivateNetwork,
    logger,
  })
  const resource = new ResourceServer({
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    scopes: config.oauth.scopes,
    ...(config.oauth.scopesSupported ? { scopesSupported: config.oauth.scopesSupported } : {}),
    authorizationServers: config.oidc.issuers.filter((i) => i.advertise).map((i) => i.issuer),
    resourceName: config.oauth.resourceName,
    ...(config.oauth.resourceDocumentation
      ? { resourceDocumentation: config.oauth.resourceDocumentation }
      : {}),
  })
  return {
    authenticator: new Authenticator({ keys: store.keys, oidc }),
    resource,
    limiter: new FailureLimiter(config.authFailureLimit),
    trustProxy: config.trustProxy,
    recordFailure: (f) =>
      void audit.write({
        id: auditId(),
        tenant: AUTH_AUDIT_TENANT,
        at: new Date().toISOString(),
        principal: `source:${f.source}`,
        principalKind: 'anonymous',
        action: f.reason === 'rate_limited' ? 'auth.rate_limited' : 'auth.failure',
        target: f.route,
        outcome: 'denied',
        errorCode: f.reason,
        requestId: f.requestId,
      }),
  }
}
