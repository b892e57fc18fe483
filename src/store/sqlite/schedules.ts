import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { nowIso } from '../scope.js'
import {
  MAX_REASON,
  type ScheduleStore,
  type TickKey,
  type TickOutcome,
  type TickRecord,
} from '../schedules.js'
import { toRecord, type Row } from '../rows/schedules.js'

/** Tick times are stored as ISO-8601 UTC with milliseconds, so equal instants are equal text. */
const canonical = (iso: string): string => new Date(iso).toISOString()

export class SqliteSchedules implements ScheduleStore {
  constructor(private readonly db: Database.Database) {}

  async claimTick(tick: TickKey, owner: string, nowMs: number): Promise<boolean> {
    const res = this.db
      .prepare(
        `INSERT INTO schedule_ticks (tenant, schedule, tick_at, status, owner, claimed_at_ms, updated_at)
         VALUES (?, ?, ?, 'claimed', ?, ?, ?) ON CONFLICT DO NOTHING`,
      )
      .run(tick.tenant, tick.schedule, canonical(tick.tickAt), owner, nowMs, nowIso())
    return res.changes === 1
  }

  async finishTick(owner: string, tick: TickKey, outcome: TickOutcome): Promise<boolean> {
    const res = this.db
      .prepare(
        `UPDATE schedule_ticks SET status = ?, run_id = ?, reason = ?, updated_at = ?
         WHERE tenant = ? AND schedule = ? AND tick_at = ? AND owner = ? AND status = 'claimed'`,
      )
      .run(
        outcome.status,
        outcome.runId ?? null,
        outcome.reason?.slice(0, MAX_REASON) ?? null,
        nowIso(),
        tick.tenant,
        tick.schedule,
        canonical(tick.tickAt),
        owner,
      )
    return res.changes === 1
  }

  async reclaimStale(owner: string, nowMs: number, staleMs: number, limit: number): Promise<TickRecord[]> {
    // One write transaction: the database lock makes each takeover exclusive.
    return this.db
      .transaction(() => {
        const rows = this.db
          .prepare(
            `SELECT * FROM schedule_ticks WHERE status = 'claimed' AND claimed_at_ms < ?
           ORDER BY claimed_at_ms LIMIT ?`,
          )
          .all(nowMs - staleMs, limit) as Row[]
        const take = this.db.prepare(
          `UPDATE schedule_ticks SET owner = ?, claimed_at_ms = ?, updated_at = ?
         WHERE tenant = ? AND schedule = ? AND tick_at = ?`,
        )
        const at = nowIso()
        for (const r of rows) take.run(owner, nowMs, at, r.tenant, r.schedule, r.tick_at)
        return rows.map((r) => toRecord({ ...r, owner, claimed_at_ms: nowMs, updated_at: at }))
      })
      .immediate()
  }

  async lastTick(tenant: string, schedule: string): Promise<TickRecord | undefined> {
    const row = this.db
      .prepare('SELECT * FROM schedule_ticks WHERE tenant = ? AND schedule = ? ORDER BY tick_at DESC LIMIT 1')
      .get(tenant, schedule) as Row | undefined
    return row && toRecord(row)
  }

  async listTicks(ctx: CallContext, schedule: string, limit = 20): Promise<TickRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM schedule_ticks WHERE tenant = ? AND schedule = ? ORDER BY tick_at DESC LIMIT ?')
      .all(ctx.tenant, schedule, Math.min(Math.max(1, Math.trunc(limit)), 500)) as Row[]
    return rows.map(toRecord)
  }

  async prune(beforeIso: string): Promise<number> {
    return this.db
      .prepare(
        `DELETE FROM schedule_ticks WHERE tick_at < ? AND EXISTS (
           SELECT 1 FROM schedule_ticks n
           WHERE n.tenant = schedule_ticks.tenant AND n.schedule = schedule_ticks.schedule
             AND n.tick_at > schedule_ticks.tick_at)`,
      )
      .run(canonical(beforeIso)).changes
  }
}
