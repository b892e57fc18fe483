import { randomUUID } from 'node:crypto'

export type Role = 'admin' | 'member' | 'approver' | 'auditor'
export const ROLES: readonly Role[] = ['admin', 'member', 'approver', 'auditor']

/**
 * Who is calling. `service` is an API key, `user` an OIDC subject (issue 5), `agent` a run acting
 * for its caller (issue 3), `system` the gateway itself (start-up, sweepers).
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
  /** The bootstrap key and the gateway itself: may act in any tenant. */
  readonly operator: boolean
  readonly requestId: string
  readonly trace: TraceContext
  readonly signal?: AbortSignal
}

export interface ContextInit {
  tenant: string
  principal: Principal
  roles?: Iterable<Role>
  scopes?: readonly string[]
  operator?: boolean
  requestId?: string
  trace?: TraceContext
  signal?: AbortSignal
}

export function createContext(init: ContextInit): CallContext {
  return {
    tenant: init.tenant,
    principal: init.principal,
    roles: new Set(init.roles ?? []),
    scopes: init.scopes ?? [],
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
