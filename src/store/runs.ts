import type { CallContext, Principal, Role } from '../context.js'

/**
 * Durable runs, threads, the step journal and the event log. API methods take the caller's
 * CallContext and are tenant-scoped; worker methods take the lease owner as a fencing token: a
 * process that lost a run's lease can no longer write to it.
 */

export type RunStatus = 'queued' | 'running' | 'interrupted' | 'succeeded' | 'failed' | 'cancelled'
export const RUN_STATUSES: readonly RunStatus[] = [
  'queued',
  'running',
  'interrupted',
  'succeeded',
  'failed',
  'cancelled',
]
export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled'])

export type MultitaskStrategy = 'reject' | 'enqueue' | 'interrupt' | 'rollback'
export const MULTITASK_STRATEGIES: readonly MultitaskStrategy[] = [
  'reject',
  'enqueue',
  'interrupt',
  'rollback',
]

export interface RunError {
  code: string
  message: string
}

export interface UsageTotals {
  promptTokens: number
  completionTokens: number
  calls: number
  byModel: Record<string, { promptTokens: number; completionTokens: number; calls: number }>
}

/** Who started the run: the run acts for this caller (its tenant, principal, roles and scopes). */
export interface CallerSnapshot {
  principal: Principal
  roles: Role[]
  scopes: string[]
}

export interface RunRecord {
  id: string
  tenant: string
  /** Principal id of the caller that created the run (owner for scoping). */
  owner: string
  agent: string
  threadId?: string
  status: RunStatus
  input: unknown
  output?: unknown
  error?: RunError
  /** The payload of the pending interrupt while `interrupted`. */
  interrupt?: unknown
  multitaskStrategy: MultitaskStrategy
  webhook?: { url: string }
  usage?: UsageTotals
  attempts: number
  createdAt: string
  updatedAt: string
}

/** What a worker gets when it claims a run. */
export interface ClaimedRun extends RunRecord {
  caller: CallerSnapshot
  /** Thread state when the run first started (replays start from it). */
  stateBefore: Record<string, unknown>
  /** How many agent events were already persisted (replayed emits below this are skipped). */
  emitted: number
  cancelRequested?: string
}

export interface NewRun {
  id: string
  agent: string
  threadId?: string
  input: unknown
  multitaskStrategy: MultitaskStrategy
  webhook?: { url: string; secret?: string }
  caller: CallerSnapshot
}

export interface ThreadRecord {
  id: string
  tenant: string
  owner: string
  metadata: Record<string, unknown>
  state: Record<string, unknown>
  /** `busy` while a run on it is queued or running, `interrupted` while one waits for resume. */
  status: 'idle' | 'busy' | 'interrupted'
  createdAt: string
  updatedAt: string
}

export type JournalKind = 'step' | 'tool' | 'interrupt' | 'state'

export interface JournalEntry {
  pos: number
  kind: JournalKind
  name: string
  status: 'started' | 'done' | 'error'
  result?: unknown
  attempt: number
}

export interface RunEvent {
  seq: number
  type: string
  data: unknown
  at: string
}

export interface NewEvent {
  type: string
  data: unknown
}

export interface RunQuery {
  threadId?: string
  status?: RunStatus
  agent?: string
  limit?: number
  /** Opaque cursor from a previous page. */
  before?: string
}

export interface FinishInput {
  status: 'succeeded' | 'failed' | 'cancelled'
  output?: unknown
  error?: RunError
}

export interface RunStore {
  /**
   * Creates a run, applying its thread's multitask strategy atomically: `reject` throws conflict
   * when the thread is busy; `interrupt` cancels the active runs; `rollback` deletes them and
   * restores the thread state they started from; `enqueue` just queues. Returns the runs displaced.
   */
  create(ctx: CallContext, run: NewRun): Promise<{ run: RunRecord; displaced: string[] }>
  get(ctx: CallContext, id: string): Promise<RunRecord | undefined>
  list(ctx: CallContext, query?: RunQuery): Promise<{ items: RunRecord[]; next?: string }>
  /** Events after `afterSeq`, oldest first. */
  events(ctx: CallContext, id: string, afterSeq: number, limit?: number): Promise<RunEvent[]>
  /**
   * Queued and interrupted runs are cancelled at once (returns status cancelled); a running run
   * gets a cancel request its worker acts on (returns status running). Terminal runs: conflict.
   */
  requestCancel(ctx: CallContext, id: string, reason: string): Promise<RunRecord | undefined>
  /** interrupted → queued with the answer recorded in the journal; conflict when not interrupted. */
  resume(ctx: CallContext, id: string, value: unknown): Promise<RunRecord | undefined>

  createThread(ctx: CallContext, t: { id: string; metadata?: Record<string, unknown> }): Promise<ThreadRecord>
  getThread(ctx: CallContext, id: string): Promise<ThreadRecord | undefined>
  listThreads(
    ctx: CallContext,
    query?: { limit?: number; before?: string },
  ): Promise<{ items: ThreadRecord[]; next?: string }>
  /** Conflict while a run on the thread is active; deletes its runs and their journals and events. */
  deleteThread(ctx: CallContext, id: string): Promise<boolean>

  /** Worker: claims runnable runs (queued, or running with an expired lease or a dead owner). */
  claim(
    owner: string,
    nowMs: number,
    leaseMs: number,
    limit: number,
    deadOwners?: readonly string[],
  ): Promise<ClaimedRun[]>
  /** Worker: extends leases; reports runs it lost and runs with a cancel request. */
  heartbeat(
    owner: string,
    ids: readonly string[],
    nowMs: number,
    leaseMs: number,
  ): Promise<{ lost: string[]; cancel: string[] }>
  /** Worker: lease owners of running runs (to detect dead owners on this host). */
  leaseOwners(): Promise<string[]>
  journal(runId: string): Promise<JournalEntry[]>
  /** Worker: upserts a journal entry (and for `state` entries the thread state) under the lease. */
  writeJournal(
    owner: string,
    runId: string,
    entry: JournalEntry,
    threadState?: Record<string, unknown>,
  ): Promise<void>
  /** Worker: appends events; `emitted` records how many agent events are now persisted. */
  appendEvents(
    owner: string,
    runId: string,
    events: readonly NewEvent[],
    emitted?: number,
  ): Promise<RunEvent[]>
  addUsage(
    owner: string,
    runId: string,
    usage: { model: string; promptTokens: number; completionTokens: number },
  ): Promise<void>
  /** Worker: running → interrupted with the payload; releases the lease; appends the interrupt event. */
  interrupt(owner: string, runId: string, payload: unknown): Promise<RunEvent[]>
  /** Worker: terminal status, output or error, terminal event; releases the lease. */
  finish(
    owner: string,
    runId: string,
    result: FinishInput,
  ): Promise<{ run: RunRecord; events: RunEvent[] } | undefined>
  /** Worker: gives runs back without changing their status (drain); another worker may claim them at once. */
  release(owner: string, ids: readonly string[]): Promise<void>
  /** The webhook a run asked for (secret included, sealed), for the completion notifier. */
  webhookOf(runId: string): Promise<{ url: string; secret?: string } | undefined>
}

/** The error a worker sees when it writes to a run whose lease it no longer holds. */
export class LeaseLostError extends Error {
  constructor(runId: string) {
    super(`lease on run ${runId} was lost`)
    this.name = 'LeaseLostError'
  }
}
