import type pg from 'pg'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import {
  LeaseLostError,
  TERMINAL_STATUSES,
  type ClaimedRun,
  type FinishInput,
  type JournalEntry,
  type NewEvent,
  type NewRun,
  type RunEvent,
  type RunQuery,
  type RunRecord,
  type RunStatus,
  type RunStore,
  type ThreadRecord,
  type UsageTotals,
} from '../runs.js'
import { decodeCursor, encodeCursor, nowIso } from '../scope.js'
import { ownerOf, seesTenant } from '../owner.js'
import { sqlState, UNIQUE_VIOLATION, type Db, type Queryable } from './db.js'
import { json, toClaimed, toRun, type RunRow, type ThreadRow } from '../run-rows.js'

/** A thread row with its computed run status (see THREAD_COLUMNS). */
interface PgThreadRow extends ThreadRow {
  run_status: ThreadRecord['status']
}

function toThread(t: PgThreadRow): ThreadRecord {
  return {
    id: t.id,
    tenant: t.tenant,
    owner: t.owner,
    metadata: JSON.parse(t.metadata) as Record<string, unknown>,
    state: JSON.parse(t.state) as Record<string, unknown>,
    status: t.run_status,
    createdAt: t.created_at,
    updatedAt: t.updated_at,
  }
}

const ACTIVE = `('queued', 'running', 'interrupted')`

/** A thread row plus its status, derived from the runs on it. */
const THREAD_COLUMNS = `t.*, (
  SELECT CASE WHEN bool_or(r.status = 'interrupted') THEN 'interrupted' WHEN count(*) > 0 THEN 'busy' ELSE 'idle' END
    FROM runs r WHERE r.tenant = t.tenant AND r.thread_id = t.id AND r.status IN ${ACTIVE}) AS run_status`

/**
 * Runs, threads, journal and events on PostgreSQL. Every multi-statement write is one
 * transaction that first locks the rows it depends on (`FOR UPDATE`), always in the same order:
 * a thread before its runs, runs by `seq`. Worker writes lock the run row with the lease
 * condition (owner and status) in the same statement, so a process that lost its lease cannot
 * write, and nobody can take the lease while a write is in flight. Workers claim with
 * `FOR UPDATE SKIP LOCKED`: concurrent claimers never wait on each other and never share a run.
 */
export class PgRuns implements RunStore {
  constructor(private readonly db: Db) {}

  // ---- helpers -------------------------------------------------------------------------------

  private async runRow(c: Queryable, id: string, lock = false): Promise<RunRow | undefined> {
    return this.db.one<RunRow>(`SELECT * FROM runs WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id], c)
  }

  private async visibleRun(
    c: Queryable,
    ctx: CallContext,
    id: string,
    lock = false,
  ): Promise<RunRow | undefined> {
    const row = await this.runRow(c, id, lock)
    if (!row || row.tenant !== ctx.tenant) return undefined
    if (!seesTenant(ctx) && row.owner !== ownerOf(ctx)) return undefined
    return row
  }

  private async visibleThread(
    c: Queryable,
    ctx: CallContext,
    id: string,
    lock = false,
  ): Promise<PgThreadRow | undefined> {
    const row = await this.db.one<PgThreadRow>(
      lock
        ? `SELECT t.*, NULL AS run_status FROM threads t WHERE t.tenant = $1 AND t.id = $2 FOR UPDATE`
        : `SELECT ${THREAD_COLUMNS} FROM threads t WHERE t.tenant = $1 AND t.id = $2`,
      [ctx.tenant, id],
      c,
    )
    if (!row) return undefined
    if (!seesTenant(ctx) && row.owner !== ownerOf(ctx)) return undefined
    return row
  }

  private async threadView(c: Queryable, tenant: string, id: string): Promise<ThreadRecord> {
    const row = await this.db.one<PgThreadRow>(
      `SELECT ${THREAD_COLUMNS} FROM threads t WHERE t.tenant = $1 AND t.id = $2`,
      [tenant, id],
      c,
    )
    return toThread(row!)
  }

  /** Appends events after the run's last one. The caller holds the run's row lock. */
  private async append(c: pg.PoolClient, runId: string, events: readonly NewEvent[]): Promise<RunEvent[]> {
    if (!events.length) return []
    const last = await this.db.one<{ s: number }>(
      'SELECT COALESCE(MAX(seq), 0) AS s FROM run_events WHERE run_id = $1',
      [runId],
      c,
    )
    const at = nowIso()
    const out = events.map((e, i) => ({ seq: last!.s + i + 1, type: e.type, data: e.data, at }))
    await c.query(
      `INSERT INTO run_events (run_id, seq, type, data, at)
       SELECT $1, seq, type, data, $2 FROM unnest($3::int[], $4::text[], $5::text[]) AS e(seq, type, data)`,
      [runId, at, out.map((e) => e.seq), out.map((e) => e.type), out.map((e) => json(e.data))],
    )
    return out
  }

  /** Locks the run if `owner` holds its lease; otherwise the write is refused. */
  private async lockLeased(c: pg.PoolClient, owner: string, runId: string): Promise<RunRow> {
    const row = await this.db.one<RunRow>(
      "SELECT * FROM runs WHERE id = $1 AND lease_owner = $2 AND status = 'running' FOR UPDATE",
      [runId, owner],
      c,
    )
    if (!row) throw new LeaseLostError(runId)
    return row
  }

  private async deleteRuns(c: pg.PoolClient, ids: readonly string[]): Promise<void> {
    if (!ids.length) return
    await c.query('DELETE FROM run_events WHERE run_id = ANY($1::text[])', [ids])
    await c.query('DELETE FROM run_journal WHERE run_id = ANY($1::text[])', [ids])
    await c.query('DELETE FROM runs WHERE id = ANY($1::text[])', [ids])
  }

  /** Queued or interrupted → cancelled now, with its terminal event. The caller holds the row lock. */
  private async cancelNow(c: pg.PoolClient, row: RunRow, reason: string): Promise<void> {
    const error = { code: 'cancelled', message: reason }
    // A running run (displaced by `interrupt`) may still be executing: its next fenced write
    // fails and it stops; the cancel request tells its heartbeat at once.
    await c.query(
      `UPDATE runs SET status = 'cancelled', error = $1, lease_owner = NULL, lease_expires_at = NULL,
         cancel_requested = CASE WHEN status = 'running' THEN $2 ELSE cancel_requested END, updated_at = $3
       WHERE id = $4`,
      [json(error), reason, nowIso(), row.id],
    )
    await this.append(c, row.id, [{ type: 'end', data: { status: 'cancelled', error } }])
  }

  // ---- API -----------------------------------------------------------------------------------

  async create(ctx: CallContext, run: NewRun): Promise<{ run: RunRecord; displaced: string[] }> {
    return this.db.tx(async (c) => {
      const displaced: string[] = []
      if (run.threadId) {
        // The thread's row lock serialises everything that starts runs on it.
        const thread = await this.visibleThread(c, ctx, run.threadId, true)
        if (!thread) throw new GatewayError('not_found', `thread ${run.threadId} not found`)
        const active = await this.db.rows<RunRow>(
          `SELECT * FROM runs WHERE tenant = $1 AND thread_id = $2 AND status IN ${ACTIVE} ORDER BY seq FOR UPDATE`,
          [ctx.tenant, run.threadId],
          c,
        )
        if (active.length) {
          const strategy = run.multitaskStrategy
          if (strategy === 'reject')
            throw new GatewayError(
              'conflict',
              `thread ${run.threadId} has an active run (${active[0]!.id}); multitask_strategy is reject`,
            )
          if (strategy === 'interrupt') {
            for (const a of active) {
              displaced.push(a.id)
              await this.cancelNow(c, a, `interrupted by run ${run.id} (multitask_strategy interrupt)`)
            }
          } else if (strategy === 'rollback') {
            // Restore the state the earliest displaced run started from, then forget the runs.
            const first = active.find((a) => a.state_before !== null)
            if (first)
              await c.query('UPDATE threads SET state = $1, updated_at = $2 WHERE tenant = $3 AND id = $4', [
                first.state_before,
                nowIso(),
                ctx.tenant,
                run.threadId,
              ])
            for (const a of active) displaced.push(a.id)
            await this.deleteRuns(c, displaced)
          }
        }
      }
      const now = nowIso()
      await c.query(
        `INSERT INTO runs (id, tenant, owner, caller, agent, thread_id, status, input, multitask_strategy,
           webhook, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $10)`,
        [
          run.id,
          ctx.tenant,
          ownerOf(ctx),
          json(run.caller),
          run.agent,
          run.threadId ?? null,
          json(run.input),
          run.multitaskStrategy,
          run.webhook ? json(run.webhook) : null,
          now,
        ],
      )
      await this.append(c, run.id, [{ type: 'status', data: { status: 'queued' } }])
      return { run: toRun((await this.runRow(c, run.id))!), displaced }
    })
  }

  async get(ctx: CallContext, id: string): Promise<RunRecord | undefined> {
    const row = await this.visibleRun(this.db.pool, ctx, id)
    return row ? toRun(row) : undefined
  }

  async list(ctx: CallContext, query: RunQuery = {}): Promise<{ items: RunRecord[]; next?: string }> {
    const args: (string | number)[] = [ctx.tenant]
    const where = ['tenant = $1']
    const add = (cond: string, v: string | number) => {
      args.push(v)
      where.push(cond.replace('?', `$${args.length}`))
    }
    if (!seesTenant(ctx)) add('owner = ?', ownerOf(ctx))
    if (query.threadId) add('thread_id = ?', query.threadId)
    if (query.status) add('status = ?', query.status)
    if (query.agent) add('agent = ?', query.agent)
    if (query.before) {
      const [seq] = decodeCursor(query.before)
      add('seq < ?', Number(seq))
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500)
    args.push(limit + 1)
    const rows = await this.db.rows<RunRow>(
      `SELECT * FROM runs WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT $${args.length}`,
      args,
    )
    const page = rows.slice(0, limit)
    return {
      items: page.map(toRun),
      ...(rows.length > limit ? { next: encodeCursor([page[page.length - 1]!.seq]) } : {}),
    }
  }

  async events(ctx: CallContext, id: string, afterSeq: number, limit = 1000): Promise<RunEvent[]> {
    if (!(await this.visibleRun(this.db.pool, ctx, id)))
      throw new GatewayError('not_found', `run ${id} not found`)
    const rows = await this.db.rows<{ seq: number; type: string; data: string; at: string }>(
      'SELECT seq, type, data, at FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [id, afterSeq, limit],
    )
    return rows.map((e) => ({ seq: e.seq, type: e.type, data: JSON.parse(e.data), at: e.at }))
  }

  async requestCancel(ctx: CallContext, id: string, reason: string): Promise<RunRecord | undefined> {
    return this.db.tx(async (c) => {
      const row = await this.visibleRun(c, ctx, id, true)
      if (!row) return undefined
      if (TERMINAL_STATUSES.has(row.status as RunStatus))
        throw new GatewayError('conflict', `run ${id} is already ${row.status}`)
      if (row.status === 'running' && row.lease_owner) {
        await c.query('UPDATE runs SET cancel_requested = $1, updated_at = $2 WHERE id = $3', [
          reason,
          nowIso(),
          id,
        ])
      } else {
        await this.cancelNow(c, row, reason)
      }
      return toRun((await this.runRow(c, id))!)
    })
  }

  async resume(ctx: CallContext, id: string, value: unknown): Promise<RunRecord | undefined> {
    return this.db.tx(async (c) => {
      const row = await this.visibleRun(c, ctx, id, true)
      if (!row) return undefined
      if (row.status !== 'interrupted')
        throw new GatewayError('conflict', `run ${id} is ${row.status}, not interrupted; nothing to resume`)
      const now = nowIso()
      await c.query(
        `UPDATE run_journal SET status = 'done', result = $1, updated_at = $2
          WHERE run_id = $3 AND pos = (
            SELECT pos FROM run_journal WHERE run_id = $3 AND kind = 'interrupt' AND status = 'started'
             ORDER BY pos DESC LIMIT 1)`,
        [json(value), now, id],
      )
      await c.query("UPDATE runs SET status = 'queued', interrupt = NULL, updated_at = $1 WHERE id = $2", [
        now,
        id,
      ])
      await this.append(c, id, [{ type: 'status', data: { status: 'queued', resumed: true } }])
      return toRun((await this.runRow(c, id))!)
    })
  }

  // ---- threads -------------------------------------------------------------------------------

  async createThread(
    ctx: CallContext,
    t: { id: string; metadata?: Record<string, unknown> },
  ): Promise<ThreadRecord> {
    const now = nowIso()
    try {
      await this.db.rows(
        `INSERT INTO threads (id, tenant, owner, metadata, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '{}', $5, $5)`,
        [t.id, ctx.tenant, ownerOf(ctx), json(t.metadata ?? {}), now],
      )
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION)
        throw new GatewayError('conflict', `thread ${t.id} already exists`)
      throw err
    }
    return this.threadView(this.db.pool, ctx.tenant, t.id)
  }

  async getThread(ctx: CallContext, id: string): Promise<ThreadRecord | undefined> {
    const row = await this.visibleThread(this.db.pool, ctx, id)
    return row ? toThread(row) : undefined
  }

  async listThreads(
    ctx: CallContext,
    query: { limit?: number; before?: string } = {},
  ): Promise<{ items: ThreadRecord[]; next?: string }> {
    const args: (string | number)[] = [ctx.tenant]
    const where = ['t.tenant = $1']
    if (!seesTenant(ctx)) {
      args.push(ownerOf(ctx))
      where.push(`t.owner = $${args.length}`)
    }
    if (query.before) {
      const [createdAt, id] = decodeCursor(query.before)
      const at = new Date(String(createdAt))
      if (Number.isNaN(at.getTime())) throw new GatewayError('bad_request', 'invalid cursor')
      args.push(at.toISOString(), String(id))
      where.push(`(t.created_at, t.id) < ($${args.length - 1}::timestamptz, $${args.length})`)
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500)
    args.push(limit + 1)
    const rows = await this.db.rows<PgThreadRow>(
      `SELECT ${THREAD_COLUMNS} FROM threads t WHERE ${where.join(' AND ')}
        ORDER BY t.created_at DESC, t.id DESC LIMIT $${args.length}`,
      args,
    )
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    return {
      items: page.map(toThread),
      ...(rows.length > limit && last ? { next: encodeCursor([last.created_at, last.id]) } : {}),
    }
  }

  async deleteThread(ctx: CallContext, id: string): Promise<boolean> {
    return this.db.tx(async (c) => {
      const row = await this.visibleThread(c, ctx, id, true)
      if (!row) return false
      const active = await this.db.one(
        `SELECT 1 FROM runs WHERE tenant = $1 AND thread_id = $2 AND status IN ${ACTIVE} LIMIT 1`,
        [ctx.tenant, id],
        c,
      )
      if (active) throw new GatewayError('conflict', `thread ${id} has an active run; cancel it first`)
      const runs = await this.db.rows<{ id: string }>(
        'SELECT id FROM runs WHERE tenant = $1 AND thread_id = $2',
        [ctx.tenant, id],
        c,
      )
      await this.deleteRuns(
        c,
        runs.map((r) => r.id),
      )
      await c.query('DELETE FROM threads WHERE tenant = $1 AND id = $2', [ctx.tenant, id])
      return true
    })
  }

  // ---- worker --------------------------------------------------------------------------------

  async claim(
    owner: string,
    nowMs: number,
    leaseMs: number,
    limit: number,
    deadOwners: readonly string[] = [],
  ): Promise<ClaimedRun[]> {
    if (limit <= 0) return []
    return this.db.tx(async (c) => {
      // Queued runs whose thread has nothing earlier still active, plus running runs nobody
      // holds. Rows another claimer has locked are skipped: it is taking them.
      const picked = await this.db.rows<{ id: string; status: string }>(
        `SELECT r.id, r.status FROM runs r WHERE
           (r.status = 'queued' AND (r.thread_id IS NULL OR NOT EXISTS (
              SELECT 1 FROM runs o WHERE o.tenant = r.tenant AND o.thread_id = r.thread_id AND o.seq <> r.seq AND
                (o.status IN ('running', 'interrupted') OR (o.status = 'queued' AND o.seq < r.seq)))))
           OR (r.status = 'running' AND (r.lease_owner IS NULL OR r.lease_expires_at < $1
                OR r.lease_owner = ANY($2::text[])))
         ORDER BY r.seq LIMIT $3
         FOR UPDATE OF r SKIP LOCKED`,
        [Math.trunc(nowMs), [...deadOwners], limit],
        c,
      )
      if (!picked.length) return []
      const ids = picked.map((p) => p.id)
      const rows = await this.db.rows<RunRow>(
        `UPDATE runs r SET status = 'running', lease_owner = $1, lease_expires_at = $2, attempts = r.attempts + 1,
           state_before = COALESCE(r.state_before, (SELECT t.state FROM threads t WHERE t.tenant = r.tenant AND t.id = r.thread_id), '{}'),
           updated_at = $3
         WHERE r.id = ANY($4::text[])
         RETURNING r.*`,
        [owner, Math.trunc(nowMs + leaseMs), nowIso(), ids],
        c,
      )
      for (const p of picked)
        if (p.status === 'queued')
          await this.append(c, p.id, [{ type: 'status', data: { status: 'running' } }])
      return rows.sort((a, b) => a.seq - b.seq).map(toClaimed)
    })
  }

  async heartbeat(
    owner: string,
    ids: readonly string[],
    nowMs: number,
    leaseMs: number,
  ): Promise<{ lost: string[]; cancel: string[] }> {
    if (!ids.length) return { lost: [], cancel: [] }
    const kept = await this.db.rows<{ id: string }>(
      `UPDATE runs SET lease_expires_at = $1 WHERE id = ANY($2::text[]) AND lease_owner = $3 AND status = 'running'
       RETURNING id`,
      [Math.trunc(nowMs + leaseMs), [...ids], owner],
    )
    const cancelled = await this.db.rows<{ id: string }>(
      'SELECT id FROM runs WHERE id = ANY($1::text[]) AND cancel_requested IS NOT NULL',
      [[...ids]],
    )
    const held = new Set(kept.map((r) => r.id))
    const cancel = new Set(cancelled.map((r) => r.id))
    return { lost: ids.filter((id) => !held.has(id)), cancel: ids.filter((id) => cancel.has(id)) }
  }

  async leaseOwners(): Promise<string[]> {
    const rows = await this.db.rows<{ o: string }>(
      "SELECT DISTINCT lease_owner AS o FROM runs WHERE status = 'running' AND lease_owner IS NOT NULL",
    )
    return rows.map((r) => r.o)
  }

  async journal(runId: string): Promise<JournalEntry[]> {
    const rows = await this.db.rows<{
      pos: number
      kind: JournalEntry['kind']
      name: string
      status: JournalEntry['status']
      result: string | null
      attempt: number
    }>('SELECT pos, kind, name, status, result, attempt FROM run_journal WHERE run_id = $1 ORDER BY pos', [
      runId,
    ])
    return rows.map((r) => ({
      pos: r.pos,
      kind: r.kind,
      name: r.name,
      status: r.status,
      ...(r.result !== null ? { result: JSON.parse(r.result) } : {}),
      attempt: r.attempt,
    }))
  }

  async writeJournal(
    owner: string,
    runId: string,
    entry: JournalEntry,
    threadState?: Record<string, unknown>,
  ): Promise<void> {
    await this.db.tx(async (c) => {
      let thread: { tenant: string; thread_id: string | null } | undefined
      if (threadState) {
        // Lock order: the thread first, then the run (as create does). A run's thread never changes.
        thread = await this.db.one('SELECT tenant, thread_id FROM runs WHERE id = $1', [runId], c)
        if (thread?.thread_id)
          await c.query('SELECT 1 FROM threads WHERE tenant = $1 AND id = $2 FOR UPDATE', [
            thread.tenant,
            thread.thread_id,
          ])
      }
      await this.lockLeased(c, owner, runId)
      const now = nowIso()
      await c.query(
        `INSERT INTO run_journal (run_id, pos, kind, name, status, result, attempt, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (run_id, pos) DO UPDATE SET status = excluded.status, result = excluded.result,
           attempt = excluded.attempt, updated_at = excluded.updated_at`,
        [
          runId,
          entry.pos,
          entry.kind,
          entry.name,
          entry.status,
          entry.result === undefined ? null : json(entry.result),
          entry.attempt,
          now,
        ],
      )
      if (threadState && thread?.thread_id)
        await c.query('UPDATE threads SET state = $1, updated_at = $2 WHERE tenant = $3 AND id = $4', [
          json(threadState),
          now,
          thread.tenant,
          thread.thread_id,
        ])
    })
  }

  async appendEvents(
    owner: string,
    runId: string,
    events: readonly NewEvent[],
    emitted?: number,
  ): Promise<RunEvent[]> {
    return this.db.tx(async (c) => {
      await this.lockLeased(c, owner, runId)
      if (emitted !== undefined) await c.query('UPDATE runs SET emitted = $1 WHERE id = $2', [emitted, runId])
      return this.append(c, runId, events)
    })
  }

  async addUsage(
    owner: string,
    runId: string,
    u: { model: string; promptTokens: number; completionTokens: number },
  ): Promise<void> {
    await this.db.tx(async (c) => {
      const row = await this.lockLeased(c, owner, runId)
      const totals: UsageTotals = row.usage
        ? (JSON.parse(row.usage) as UsageTotals)
        : { promptTokens: 0, completionTokens: 0, calls: 0, byModel: {} }
      totals.promptTokens += u.promptTokens
      totals.completionTokens += u.completionTokens
      totals.calls += 1
      const m = (totals.byModel[u.model] ??= { promptTokens: 0, completionTokens: 0, calls: 0 })
      m.promptTokens += u.promptTokens
      m.completionTokens += u.completionTokens
      m.calls += 1
      await c.query('UPDATE runs SET usage = $1 WHERE id = $2', [json(totals), runId])
    })
  }

  async interrupt(owner: string, runId: string, payload: unknown): Promise<RunEvent[]> {
    return this.db.tx(async (c) => {
      await this.lockLeased(c, owner, runId)
      await c.query(
        `UPDATE runs SET status = 'interrupted', interrupt = $1, lease_owner = NULL, lease_expires_at = NULL,
           updated_at = $2 WHERE id = $3`,
        [json(payload), nowIso(), runId],
      )
      return this.append(c, runId, [{ type: 'interrupt', data: { status: 'interrupted', payload } }])
    })
  }

  async finish(
    owner: string,
    runId: string,
    result: FinishInput,
  ): Promise<{ run: RunRecord; events: RunEvent[] } | undefined> {
    return this.db.tx(async (c) => {
      const row = await this.runRow(c, runId, true)
      if (!row || row.lease_owner !== owner || row.status !== 'running') return undefined
      const updated = await this.db.one<RunRow>(
        `UPDATE runs SET status = $1, output = $2, error = $3, lease_owner = NULL, lease_expires_at = NULL,
           updated_at = $4 WHERE id = $5 RETURNING *`,
        [
          result.status,
          result.output === undefined ? null : json(result.output),
          result.error ? json(result.error) : null,
          nowIso(),
          runId,
        ],
        c,
      )
      const events = await this.append(c, runId, [
        {
          type: 'end',
          data: {
            status: result.status,
            ...(result.output !== undefined ? { output: result.output } : {}),
            ...(result.error ? { error: result.error } : {}),
          },
        },
      ])
      return { run: toRun(updated!), events }
    })
  }

  async release(owner: string, ids: readonly string[]): Promise<void> {
    if (!ids.length) return
    await this.db.rows(
      'UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ANY($1::text[]) AND lease_owner = $2',
      [[...ids], owner],
    )
  }

  async webhookOf(runId: string): Promise<{ url: string; secret?: string } | undefined> {
    const row = await this.db.one<{ webhook: string | null }>('SELECT webhook FROM runs WHERE id = $1', [
      runId,
    ])
    return row?.webhook ? (JSON.parse(row.webhook) as { url: string; secret?: string }) : undefined
  }
}
