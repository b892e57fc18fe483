import type { CallContext } from '../../context.js'
import { nowIso } from '../scope.js'
import {
  MAX_REASON,
  type ScheduleStore,
  type TickKey,
  type TickOutcome,
  type TickRecord,
} from '../schedules.js'
import type { Db } from './db.js'
import { toRecord, type Row } from '../rows/schedules.js'

export class PgSchedules implements ScheduleStore {
  constructor(private readonly db: Db) {}

  async claimTick(tick: TickKey, owner: string, nowMs: number): Promise<boolean> {
    // The primary key decides: of several replicas inserting the same tick, one gets the row.
    const n = await this.db.count(
      `INSERT INTO schedule_ticks (tenant, schedule, tick_at, status, owner, claimed_at_ms, updated_at)
       VALUES ($1, $2, $3, 'claimed', $4, $5, $6) ON CONFLICT DO NOTHING`,
      [tick.tenant, tick.schedule, tick.tickAt, owner, nowMs, nowIso()],
    )
    return n === 1
  }

  async finishTick(owner: string, tick: TickKey, outcome: TickOutcome): Promise<boolean> {
    const n = await this.db.count(
      `UPDATE schedule_ticks SET status = $1, run_id = $2, reason = $3, updated_at = $4
       WHERE tenant = $5 AND schedule = $6 AND tick_at = $7 AND owner = $8 AND status = 'claimed'`,
      [
        outcome.status,
        outcome.runId ?? null,
        outcome.reason?.slice(0, MAX_REASON) ?? null,
        nowIso(),
        tick.tenant,
        tick.schedule,
        tick.tickAt,
        owner,
      ],
    )
    return n === 1
  }

  async reclaimStale(owner: string, nowMs: number, staleMs: number, limit: number): Promise<TickRecord[]> {
    const rows = await this.db.rows<Row>(
      `UPDATE schedule_ticks t SET owner = $1, claimed_at_ms = $2, updated_at = $3
       FROM (SELECT tenant, schedule, tick_at FROM schedule_ticks
             WHERE status = 'claimed' AND claimed_at_ms < $4
             ORDER BY claimed_at_ms LIMIT $5 FOR UPDATE SKIP LOCKED) s
       WHERE t.tenant = s.tenant AND t.schedule = s.schedule AND t.tick_at = s.tick_at
         AND t.status = 'claimed' AND t.claimed_at_ms < $4
       RETURNING t.*`,
      [owner, nowMs, nowIso(), nowMs - staleMs, limit],
    )
    return rows.map(toRecord)
  }

  async lastTick(tenant: string, schedule: string): Promise<TickRecord | undefined> {
    const row = await this.db.one<Row>(
      'SELECT * FROM schedule_ticks WHERE tenant = $1 AND schedule = $2 ORDER BY tick_at DESC LIMIT 1',
      [tenant, schedule],
    )
    return row && toRecord(row)
  }

  async listTicks(ctx: CallContext, schedule: string, limit = 20): Promise<TickRecord[]> {
    const rows = await this.db.rows<Row>(
      'SELECT * FROM schedule_ticks WHERE tenant = $1 AND schedule = $2 ORDER BY tick_at DESC LIMIT $3',
      [ctx.tenant, schedule, Math.min(Math.max(1, Math.trunc(limit)), 500)],
    )
    return rows.map(toRecord)
  }

  async prune(beforeIso: string): Promise<number> {
    return this.db.count(
      `DELETE FROM schedule_ticks t WHERE t.tick_at < $1 AND EXISTS (
         SELECT 1 FROM schedule_ticks n
         WHERE n.tenant = t.tenant AND n.schedule = t.schedule AND n.tick_at > t.tick_at)`,
      [beforeIso],
    )
  }
}
