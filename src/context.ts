import { randomUUID } from 'node:crypto'

export type Role = 'admin' | 'member' | 'approver' | 'auditor'
export const ROLES: readonly Role[] = ['admin', 'member', 'approver', 'auditor']

/**
 * Who is calling. `service` is an API key (id: the key id), `user` an OIDC subject (id:
 * `{issuer id}:{sub}`, so two issuers' subjects never collide), `agent` a run acting for its
 * caller (id: `agent:{name}`, `onBehalfOf` the caller), `system` the gateway itself.
 */
export interface Principal {
  readonly kind: 'user' | 'service' | 'agent' | 'system'
  readonly id: string
  readonly name?: string
  /** For an agent principal: the principal it acts for. */
  readonly onBehalfOf?: Principal
}

export interface TraceContext {
  readonly traceparent?: string
  readonly tracestate?: string
}

/**
 * Built once per request and passed explicitly to every handler and store method.
 * Stores scope every query by `tenant`; only `operator` contexts may name another tenant.
 */
export interface CallContext {
  readonly tenant: string
  readonly principal: Principal
  readonly roles: ReadonlySet<Role>
  readonly scopes: readonly string[]
  /**
   * Whether `scopes` limit what the caller may reach: true for OIDC tokens (unless their issuer
   * is configured with `requireScopes: false`) and for API keys created with scopes; false
   * (absent) means the roles alone decide.
   */
  readonly scopesEnforced?: boolean
  /** The bootstrap key and the gateway itself: may act in any tenant. */
  readonly operator: boolean
  readonly requestId: string
  readonly trace: TraceContext
  readonly signal?: AbortSignal
}

export interface ContextInit {
  tenant: string
  principal: Principal
  /** A Set given here is kept as the context's (contexts never change their roles); anything else is copied into one. */
  roles?: Iterable<Role>
  scopes?: readonly string[]
  scopesEnforced?: boolean
  operator?: boolean
  requestId?: string
  trace?: TraceContext
  signal?: AbortSignal
}

export function createContext(init: ContextInit): CallContext {
  return {
    tenant: init.tenant,
    principal: init.principal,
    roles: init.roles instanceof Set ? init.roles : new Set(init.roles ?? []),
    scopes: init.scopes ?? [],
    ...(init.scopesEnforced ? { scopesEnforced: true } : {}),
    operator: init.operator ?? false,
    requestId: init.requestId ?? randomUUID(),
    trace: init.trace ?? {},
    ...(init.signal ? { signal: init.signal } : {}),
  }
}

/** The gateway acting for itself (start-up, reloads): an operator in the given tenant. */
export function systemContext(tenant = 'default'): CallContext {
  return createContext({
    tenant,
    principal: { kind: 'system', id: 'gatehouse' },
    roles: ['admin'],
    operator: true,
  })
}

/** The same caller, acting in another tenant. Callers must have authorised the switch. */
export function inTenant(ctx: CallContext, tenant: string): CallContext {
  return tenant === ctx.tenant ? ctx : { ...ctx, tenant }
}

export function hasRole(ctx: CallContext, ...roles: Role[]): boolean {
  return roles.some((r) => ctx.roles.has(r))
}
