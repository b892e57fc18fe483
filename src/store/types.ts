import type { CallContext, Role } from '../context.js'
import type { RunStore } from './runs.js'
import type { ApprovalStore, LimitStore } from './policy.js'
import type { A2aStore } from './a2a.js'
import type { ScheduleStore } from './schedules.js'
import type { ConnectionStore } from './connections.js'
import type { SessionStore } from './sessions.js'

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

/**
 * Finished tool calls in the compact form of src/telemetry/call-log.ts: each is one audit row and,
 * when its trace is sampled, one span.
 */
export interface ToolCallBatch {
  /** The encoded calls are bytes [0, length) of `bytes`; the store may take (transfer) the buffer. */
  readonly bytes: ArrayBuffer
  readonly length: number
  /** How many calls. */
  readonly count: number
  /** The batch's string table: the encoded calls refer to these by index. */
  readonly strings: readonly string[]
}

export interface CallLogStore {
  /** Writes each call's audit row, with its span in the same row (read back by `spans`). */
  append(batch: ToolCallBatch): Promise<void>
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres'
  readonly tenants: TenantStore
  readonly keys: ApiKeyStore
  readonly resources: ResourceStore
  readonly audit: AuditStore
  readonly spans: SpanStore
  /** Tool calls' audit rows and spans, recorded compactly on the hot path (src/telemetry/call-log.ts). */
  readonly calls: CallLogStore
  readonly webhooks: WebhookOutbox
  readonly memory: MemoryStore
  readonly runs: RunStore
  /** The approvals ledger (policy decision: approve). */
  readonly approvals: ApprovalStore
  /** Budget counters and rate-limit buckets. */
  readonly limits: LimitStore
  /** A2A push notification configs, message ids, the task listing. */
  readonly a2a: A2aStore
  /** Schedule ticks: each cron tick claimed once across processes (src/store/schedules.ts). */
  readonly schedules: ScheduleStore
  /** Per-user upstream connections (sealed tokens), OAuth states and clients (src/store/connections.ts). */
  readonly connections: ConnectionStore
  /** MCP 2025-11-25 sessions shared by replicas: liveness and SSE events (src/store/sessions.ts). */
  readonly sessions: SessionStore
  /** Cheap liveness probe for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}

/** One long-term memory item (`/v1/store`): a JSON object under a namespace path and a key. */
export interface MemoryRecord {
  /** Whose item it is (`kind:id` of the principal that wrote it); shown only to callers who see other owners' items. */
  owner?: string
  /** 1–10 labels, each 1–128 characters; any characters (dots, slashes, unicode) are allowed. */
  namespace: string[]
  key: string
  value: Record<string, unknown>
  createdAt: string
  updatedAt: string
  /** Absent when the item never expires. */
  expiresAt?: string
}

export interface MemoryPut {
  /** Write into another owner's items (admins and operators); default: the caller's own. */
  owner?: string
  namespace: string[]
  key: string
  /** A JSON object, at most 1 MiB as JSON. */
  value: Record<string, unknown>
  /** Seconds until the item disappears; absent: it never expires (also clears an earlier TTL). */
  ttlSeconds?: number
}

/**
 * Conditions on top-level fields of the value, all of which must hold. A plain value matches
 * exactly (same JSON type and value; objects and arrays by their JSON, key order included).
 * An object of operators applies each: `$eq`, `$ne` (also matches items without the field),
 * `$gt`, `$gte`, `$lt`, `$lte` (numbers with numbers, strings with strings by code point;
 * never matches a missing field or another type), `$in` (an array of values, up to 100).
 */
export type MemoryFilter = Record<string, unknown>

export interface MemorySearch {
  /** One owner's items; default: the caller's own, or every owner's for admins, auditors and operators. */
  owner?: string
  /** Matches whole labels: ["a"] finds ["a"] and ["a","b"], never ["ab"]. [] searches everything. */
  namespacePrefix: string[]
  filter?: MemoryFilter
  /** 1–1000, default 10. */
  limit?: number
  /** Default 0. */
  offset?: number
}

export interface NamespaceQuery {
  /** As in MemorySearch. */
  owner?: string
  /** Only namespaces starting with these whole labels. */
  prefix?: string[]
  /** Truncates namespaces to this many labels (absolute depth) and deduplicates. */
  maxDepth?: number
  /** 1–1000, default 100. */
  limit?: number
  offset?: number
}

/**
 * Long-term memory, like LangGraph's BaseStore, scoped by `ctx.tenant` and partitioned by owner:
 * members (and agents acting for them) see their own items only; admins, auditors and operators
 * read every owner's and may name one with `owner`. Expired items are
 * invisible at once; `sweepExpired` only reclaims their space. Bad input is a `bad_request`
 * GatewayError naming the problem. Search results are newest update first.
 */
export interface MemoryStore {
  /** Creates or replaces the item; `createdAt` survives a replace, `updatedAt` does not. */
  put(ctx: CallContext, item: MemoryPut): Promise<MemoryRecord>
  /** The caller's own item, or `opts.owner`'s; admins, auditors and operators without one of their own get the newest of any owner. */
  get(
    ctx: CallContext,
    namespace: string[],
    key: string,
    opts?: { owner?: string },
  ): Promise<MemoryRecord | undefined>
  search(ctx: CallContext, query: MemorySearch): Promise<MemoryRecord[]>
  /** False when there was no (live) item of the caller (or of `opts.owner`) in the caller's tenant. */
  delete(ctx: CallContext, namespace: string[], key: string, opts?: { owner?: string }): Promise<boolean>
  /** Distinct namespaces holding live items, sorted label by label. */
  listNamespaces(ctx: CallContext, query?: NamespaceQuery): Promise<string[][]>
  /** Deletes expired items of every tenant (a system job); returns how many. */
  sweepExpired(nowMs?: number): Promise<number>
}

export type WebhookStatus = 'pending' | 'delivered' | 'dead'

export interface NewWebhookDelivery {
  /** Chosen by the caller; stable across retries (receivers dedupe on it). Enqueueing an id again is a no-op. */
  id: string
  runId?: string
  url: string
  /** The delivery's own signing secret, sealed (vault/seal.ts); plaintext is refused. */
  sealedSecret?: string
  /** The exact JSON body to send, serialised once so every attempt signs the same bytes. */
  payload: string
  /** First attempt not before this (epoch ms); default now. */
  nextAttemptAtMs?: number
}

/** What the outbox shows: never the secret, only whether there is one. */
export interface WebhookDeliveryRecord {
  id: string
  tenant: string
  runId?: string
  url: string
  hasSecret: boolean
  payload: string
  status: WebhookStatus
  /** Attempts started so far (a claim counts as an attempt). */
  attempts: number
  nextAttemptAtMs: number
  lastError?: string
  createdAt: string
  updatedAt: string
}

/** A delivery leased to one sender for one attempt. */
export interface ClaimedWebhookDelivery extends WebhookDeliveryRecord {
  sealedSecret?: string
  /** Number of this attempt, from 1. */
  attempt: number
  leaseExpiresAtMs: number
}

/**
 * Durable outbox of outgoing webhooks. Senders claim due deliveries under a lease, so two
 * processes over one database never send the same delivery at once; a sender that dies leaves
 * its claims to be taken again when the lease expires. The sender-side methods act for the
 * gateway itself (no CallContext) and only touch deliveries leased to `owner`.
 */
export interface WebhookOutbox {
  enqueue(ctx: CallContext, delivery: NewWebhookDelivery): Promise<WebhookDeliveryRecord>
  /** Leases up to `limit` pending deliveries due at `nowMs` whose lease is free or expired. */
  claimDue(owner: string, nowMs: number, limit: number, leaseMs: number): Promise<ClaimedWebhookDelivery[]>
  /** False when the delivery is not leased to `owner` any more (another sender took it over). */
  markDelivered(owner: string, id: string): Promise<boolean>
  /** Records a failed attempt: retry at `nextAttemptAtMs`, or dead when null. */
  markFailed(owner: string, id: string, error: string, nextAttemptAtMs: number | null): Promise<boolean>
  /** The caller's tenant's deliveries, oldest first; optionally those of one run. */
  list(ctx: CallContext, query?: { runId?: string; limit?: number }): Promise<WebhookDeliveryRecord[]>
}
