import type { CallContext, Role } from '../context.js'

/**
 * Narrow async storage interfaces. Every method that touches tenant data takes the caller's
 * CallContext and is scoped by `ctx.tenant`; only operator contexts may name another tenant.
 * Implementations return copies, never internal references. One contract suite
 * (test/store/contract.ts) runs against every implementation.
 */

export interface Tenant {
  name: string
  displayName?: string
  createdAt: string
}

export interface TenantStore {
  /** Idempotent. Operators only. */
  ensure(ctx: CallContext, name: string, displayName?: string): Promise<Tenant>
  get(ctx: CallContext, name: string): Promise<Tenant | undefined>
  /** Operators see all tenants, everybody else only their own. */
  list(ctx: CallContext): Promise<Tenant[]>
}

export interface ApiKeyRecord {
  id: string
  tenant: string
  name: string
  role: Role
  operator: boolean
  scopes: string[]
  createdAt: string
  expiresAt?: string
  revokedAt?: string
  createdBy?: string
}

export interface NewApiKey {
  id: string
  name: string
  role: Role
  /** sha256 of the whole key; the key itself is never stored. */
  hash: string
  operator?: boolean
  scopes?: string[]
  expiresAt?: string
}

export interface ApiKeyStore {
  create(ctx: CallContext, key: NewApiKey): Promise<ApiKeyRecord>
  list(ctx: CallContext): Promise<ApiKeyRecord[]>
  /** Returns false when the key does not exist in the caller's tenant (no cross-tenant probing). */
  revoke(ctx: CallContext, id: string): Promise<boolean>
  /**
   * Authentication lookup, before any tenant is known: the one method without a context.
   * Returns undefined for unknown, revoked and expired keys alike.
   */
  lookupByHash(hash: string, now?: Date): Promise<ApiKeyRecord | undefined>
  /** Replace the hash of the bootstrap operator key (start-up only). */
  upsertBootstrap(ctx: CallContext, hash: string): Promise<void>
  hasBootstrap(ctx: CallContext): Promise<boolean>
}

export type ResourceKind = 'Tenant' | 'Connector' | 'Server' | 'Agent' | 'Policy' | 'Schedule' | 'Bot'

export interface ResourceRecord<S = unknown> {
  kind: ResourceKind
  tenant: string
  name: string
  spec: S
  /** Bumped each time the spec changes. */
  generation: number
  updatedAt: string
}

export interface ResourceInput {
  kind: ResourceKind
  tenant: string
  name: string
  spec: unknown
}

export type ApplyAction = 'created' | 'updated' | 'unchanged'

export interface ResourceStore {
  /** All or nothing, in one transaction. Non-operators may only write their own tenant. */
  apply(ctx: CallContext, docs: ResourceInput[]): Promise<{ resource: ResourceRecord; action: ApplyAction }[]>
  get(ctx: CallContext, kind: ResourceKind, name: string): Promise<ResourceRecord | undefined>
  /** The caller's tenant; operators may pass `allTenants` to read every tenant (start-up). */
  list(ctx: CallContext, kind?: ResourceKind, opts?: { allTenants?: boolean }): Promise<ResourceRecord[]>
  delete(ctx: CallContext, kind: ResourceKind, name: string): Promise<boolean>
}

export interface AuditEvent {
  id: string
  tenant: string
  at: string
  principal: string
  principalKind: string
  action: string
  /** e.g. connector/tool for tool calls, kind/name for admin writes. */
  target?: string
  outcome: 'ok' | 'error' | 'denied' | 'cancelled'
  errorCode?: string
  /** sha256 of the canonical arguments: enough to correlate, never the payload. */
  argsHash?: string
  latencyMs?: number
  requestId?: string
  traceId?: string
}

export interface AuditQuery {
  limit?: number
  /** Opaque cursor from a previous page. */
  before?: string
  action?: string
  principal?: string
}

export interface AuditStore {
  /** Batched writes from the pipeline; each event names its own tenant. */
  append(events: AuditEvent[]): Promise<void>
  list(ctx: CallContext, query?: AuditQuery): Promise<{ items: AuditEvent[]; next?: string }>
}

export interface SpanRecord {
  traceId: string
  spanId: string
  parentSpanId?: string
  tenant: string
  name: string
  kind: string
  startMs: number
  durationMs: number
  status: 'ok' | 'error'
  attributes: Record<string, string | number | boolean>
}

export interface SpanStore {
  append(spans: SpanRecord[]): Promise<void>
  listTrace(ctx: CallContext, traceId: string): Promise<SpanRecord[]>
  recent(ctx: CallContext, limit?: number): Promise<SpanRecord[]>
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  readonly tenants: TenantStore
  readonly keys: ApiKeyStore
  readonly resources: ResourceStore
  readonly audit: AuditStore
  readonly spans: SpanStore
  /** Cheap liveness probe for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}
