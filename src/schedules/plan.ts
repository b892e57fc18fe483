import type { Cron } from 'croner'

/** What one pass of the scheduler does for one schedule at `nowMs`. */
export interface TickPlan {
  /** Occurrences due now (or late by at most the grace period): each is claimed and run. */
  onTime: number[]
  /** Occurrences older than the grace period: handled by the schedule's `missed` policy. */
  missed: number
  /** The latest missed occurrence (what `missed: run_once` runs for all of them). */
  latestMissed?: number
  /** The next occurrence after `nowMs`; undefined when the expression never fires again. */
  next?: number
}

/** Occurrences looked at in one pass before skipping ahead (a long downtime of a per-second schedule). */
export const MAX_SCAN = 1000

/**
 * The occurrences from `nextMs` (the first one not handled yet) up to `nowMs`, split into on time
 * and missed. Pure: the scheduler and the unit tests share it.
 */
export function planTicks(cron: Cron, nextMs: number | undefined, nowMs: number, graceMs: number): TickPlan {
  const plan: TickPlan = { onTime: [], missed: 0 }
  let next = nextMs
  while (next !== undefined && next <= nowMs) {
    if (nowMs - next <= graceMs) plan.onTime.push(next)
    else {
      plan.missed++
      plan.latestMissed = next
      if (plan.missed >= MAX_SCAN) {
        // Too far behind to walk every occurrence (a long downtime of a per-second schedule):
        // jump to the last one before the grace window; `missed` then means "at least".
        const last = cron.previousRuns(1, new Date(nowMs - graceMs))[0]?.getTime()
        if (last !== undefined && last > next) next = plan.latestMissed = last
      }
    }
    next = cron.nextRun(new Date(next))?.getTime()
  }
  if (next !== undefined) plan.next = next
  return plan
}

/** The first occurrence after `afterMs`. */
export function nextAfter(cron: Cron, afterMs: number): number | undefined {
  return cron.nextRun(new Date(afterMs))?.getTime()
}
