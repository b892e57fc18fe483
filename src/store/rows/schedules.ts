import type { TickRecord, TickStatus } from '../schedules.js'

/** Tick rows as both stores read them, and their mapping to records. */

export interface Row {
  tenant: string
  schedule: string
  tick_at: string
  status: string
  run_id: string | null
  reason: string | null
  owner: string
  claimed_at_ms: number
  updated_at: string
}

export function toRecord(r: Row): TickRecord {
  return {
    tenant: r.tenant,
    schedule: r.schedule,
    tickAt: r.tick_at,
    status: r.status as TickStatus,
    ...(r.run_id !== null ? { runId: r.run_id } : {}),
    ...(r.reason !== null ? { reason: r.reason } : {}),
    owner: r.owner,
    claimedAtMs: r.claimed_at_ms,
    updatedAt: r.updated_at,
  }
}
