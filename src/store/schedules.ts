import type { CallContext } from '../context.js'

/**
 * Schedule ticks: the ledger that makes each cron tick happen once across every process on one
 * database. A tick is keyed by (tenant, schedule, tick time); whichever process inserts the row
 * first owns the tick and starts its run, then records the outcome. Worker methods take the
 * claimer (`owner`) as a fencing token, like the run and webhook workers.
 *
 * Cluster-wide system jobs (sweepers) use the same ledger under the tenant `_system`, which no
 * real tenant can be named (tenant names start alphanumeric).
 */

export type TickStatus = 'claimed' | 'started' | 'skipped' | 'failed'

export interface TickKey {
  tenant: string
  schedule: string
  /** The cron occurrence, ISO-8601 UTC with milliseconds. */
  tickAt: string
}

export interface TickRecord extends TickKey {
  status: TickStatus
  /** The run the tick started (`started`). */
  runId?: string
  /** Why the tick started nothing (`skipped`: e.g. the previous run is still active; `failed`: the error). */
  reason?: string
  /** Who claimed it (a process id) and when (epoch ms). */
  owner: string
  claimedAtMs: number
  updatedAt: string
}

export interface TickOutcome {
  status: 'started' | 'skipped' | 'failed'
  runId?: string
  reason?: string
}

export interface ScheduleStore {
  /** Inserts the tick as `claimed` by `owner`; false when the tick already exists (someone else has it). */
  claimTick(tick: TickKey, owner: string, nowMs: number): Promise<boolean>
  /** Records the outcome of a tick still claimed by `owner`; false when it is not (any more). */
  finishTick(owner: string, tick: TickKey, outcome: TickOutcome): Promise<boolean>
  /**
   * Takes over up to `limit` ticks left `claimed` by a claimer that stopped before recording an
   * outcome (claimed before `nowMs - staleMs`); each goes to exactly one caller.
   */
  reclaimStale(owner: string, nowMs: number, staleMs: number, limit: number): Promise<TickRecord[]>
  /** The latest tick of a schedule (system jobs: tenant `_system`). */
  lastTick(tenant: string, schedule: string): Promise<TickRecord | undefined>
  /** The caller's tenant's ticks of one schedule, newest first (default 20, at most 500). */
  listTicks(ctx: CallContext, schedule: string, limit?: number): Promise<TickRecord[]>
  /** Deletes ticks older than `beforeIso`, always keeping each schedule's latest; returns how many. */
  prune(beforeIso: string): Promise<number>
}

/** The tenant of cluster-wide system jobs in the tick ledger. */
export const SYSTEM_TENANT = '_system'
/** Longest reason kept. */
export const MAX_REASON = 500
