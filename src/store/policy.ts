import type { CallContext, Principal, Role } from '../context.js'

/**
 * Storage for policy: the approvals ledger and the durable counters behind budgets and rate
 * limits. Approval methods that take a CallContext are scoped by `ctx.tenant`; the sweeper's
 * methods act for the gateway itself across tenants.
 */

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired'
export const APPROVAL_STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'rejected', 'expired']

export interface ApprovalRecord {
  id: string
  tenant: string
  /** The run whose call waits (absent for direct MCP calls). */
  runId?: string
  /** Dedupes requests: the run call's idempotency key (`{run}:{position}`). */
  requestKey?: string
  /** The exposed tool name, and where it lives. */
  tool: string
  connector: string
  toolName: string
  /** The arguments as requested (canonical JSON, parsed). */
  args: Record<string, unknown>
  argsHash: string
  requester: Principal
  /** The requester's roles when it asked (edits are evaluated as its call again). */
  requesterRoles: Role[]
  /** ownerOf(requester): who may see it besides approvers. */
  requesterKey: string
  approvers: { roles: Role[]; principals: string[] }
  /** The rule that asked for approval (`{policy}/{rule}`) and why. */
  rule: string
  ruleReason?: string
  status: ApprovalStatus
  expiresAt: string
  decision?: 'approve' | 'reject' | 'edit'
  /** `{kind}:{id}` of whoever decided (`system:sweeper` for expiry). */
  decider?: string
  reason?: string
  /** The arguments the approver substituted (decision edit). */
  editedArgs?: Record<string, unknown>
  /** api | mcp | slack | sweeper */
  channel?: string
  createdAt: string
  decidedAt?: string
  /** A direct (non-run) call used this approval. */
  usedAt?: string
  /** A message posted about it (Slack: `{channel, ts}`). */
  notice?: Record<string, unknown>
}

export interface NewApproval {
  id: string
  runId?: string
  requestKey?: string
  tool: string
  connector: string
  toolName: string
  args: Record<string, unknown>
  argsHash: string
  requester: Principal
  requesterRoles: Role[]
  requesterKey: string
  approvers: { roles: Role[]; principals: string[] }
  rule: string
  ruleReason?: string
  expiresAt: string
}

export interface ApprovalDecision {
  status: 'approved' | 'rejected' | 'expired'
  decision: 'approve' | 'reject' | 'edit'
  decider: string
  reason?: string
  editedArgs?: Record<string, unknown>
  channel: string
}

export interface ApprovalQuery {
  status?: ApprovalStatus
  runId?: string
  /** Only approvals this principal requested (ownerOf). */
  requesterKey?: string
  limit?: number
  before?: string
}

export interface ApprovalStore {
  /** Inserts; with a requestKey already present in the tenant, returns that one instead (created: false). */
  create(ctx: CallContext, a: NewApproval): Promise<{ approval: ApprovalRecord; created: boolean }>
  get(ctx: CallContext, id: string): Promise<ApprovalRecord | undefined>
  byRequestKey(ctx: CallContext, requestKey: string): Promise<ApprovalRecord | undefined>
  /** The newest pending or approved-and-unused approval of the same requester, tool and arguments (direct calls). */
  reusable(
    ctx: CallContext,
    q: { requesterKey: string; tool: string; argsHash: string; nowIso: string },
  ): Promise<ApprovalRecord | undefined>
  list(ctx: CallContext, q?: ApprovalQuery): Promise<{ items: ApprovalRecord[]; next?: string }>
  /**
   * pending → decided, a compare-and-swap: only a pending, unexpired approval changes. Returns the
   * record after the attempt and whether this call made the change.
   */
  decide(
    ctx: CallContext,
    id: string,
    d: ApprovalDecision,
    nowIso: string,
  ): Promise<{ approval: ApprovalRecord; changed: boolean } | undefined>
  /** approved and unused → used (direct calls use an approval once); false when already used. */
  markUsed(ctx: CallContext, id: string, nowIso: string): Promise<boolean>
  setNotice(ctx: CallContext, id: string, notice: Record<string, unknown>): Promise<void>
  /** Sweeper: pending approvals whose expiry passed become expired; returns them. */
  expireDue(nowIso: string, limit: number): Promise<ApprovalRecord[]>
  /** Sweeper: decided approvals of runs whose run has not been told yet. */
  unnotified(limit: number): Promise<ApprovalRecord[]>
  markNotified(id: string): Promise<void>
}

/**
 * Durable counters for budgets and rate limits. Every method is one atomic statement or
 * transaction, so concurrent callers (threads, processes) never overspend a limit.
 */
export interface LimitStore {
  /** Adds `amount` to the counter when `used + amount <= limit`; returns whether it did and the count after. */
  reserve(key: string, period: string, amount: number, limit: number): Promise<{ ok: boolean; used: number }>
  /** Adds (or, negative, refunds) without a limit: usage known only after the fact. */
  add(key: string, period: string, amount: number): Promise<number>
  used(key: string, period: string): Promise<number>
  /**
   * Token bucket: refills `ratePerMs` up to `capacity`, then takes `n` if available. Returns the
   * milliseconds until `n` would be available when it is not.
   */
  take(
    key: string,
    capacity: number,
    ratePerMs: number,
    nowMs: number,
    n?: number,
  ): Promise<{ ok: boolean; retryAfterMs: number }>
}
