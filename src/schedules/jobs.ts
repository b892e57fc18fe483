import type { Logger } from '../log.js'
import type { Store } from '../store/types.js'
import type { SystemJob } from './scheduler.js'

/** Ticks are kept this long (each schedule's latest always stays: the missed policy needs it). */
export const TICK_RETENTION_MS = 7 * 86_400_000

/**
 * The gateway's periodic jobs that only need one process of the cluster per interval; the
 * scheduler claims each interval in the tick ledger like a schedule tick. (Jobs that must run
 * in every process stay where they are: see docs/schedules.md "System jobs".)
 */
export function systemJobs(store: Store, logger: Logger): SystemJob[] {
  return [
    {
      // Expired memory items are invisible at once; this only reclaims their space.
      name: 'memory-ttl-sweep',
      cron: '0 * * * * *',
      run: async () => {
        const n = await store.memory.sweepExpired()
        if (n) logger.debug({ deleted: n }, 'expired memory items swept')
      },
    },
    {
      // Connect flows nobody finished: their states expired after 10 minutes and are refused anyway.
      name: 'oauth-state-prune',
      cron: '30 */5 * * * *',
      run: async () => {
        const n = await store.connections.pruneStates(new Date().toISOString())
        if (n) logger.debug({ deleted: n }, 'expired connect states pruned')
      },
    },
    {
      name: 'schedule-tick-prune',
      cron: '0 17 * * * *',
      run: async () => {
        await store.schedules.prune(new Date(Date.now() - TICK_RETENTION_MS).toISOString())
      },
    },
  ]
}
