import type Database from 'better-sqlite3'
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
import { json, toClaimed, toRun, type RunRow, type ThreadRow } from '../run-rows.js'

const ACTIVE = `('queued', 'running', 'interrupted')`

/** Runs, threads, journal and events on SQLite. Writes are synchronous transactions (IMMEDIATE). */
export class SqliteRuns implements RunStore {
  private readonly stmts

  constructor(private readonly db: Database.Database) {
    const p = (sql: string) => db.prepare(sql)
    this.stmts = {
      runById: p('SELECT * FROM runs WHERE id = ?'),
      threadById: p('SELECT * FROM threads WHERE tenant = ? AND id = ?'),
      activeOnThread: p(
        `SELECT * FROM runs WHERE tenant = ? AND thread_id = ? AND status IN ${ACTIVE} ORDER BY seq`,
      ),
      maxEvent: p('SELECT COALESCE(MAX(seq), 0) AS s FROM run_events WHERE run_id = ?'),
      insertEvent: p('INSERT INTO run_events (run_id, seq, type, data, at) VALUES (?, ?, ?, ?, ?)'),
      events: p(
        'SELECT seq, type, data, at FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      journal: p('SELECT * FROM run_journal WHERE run_id = ? ORDER BY pos'),
      upsertJournal: p(
        `INSERT INTO run_journal (run_id, pos, kind, name, status, result, attempt, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, pos) DO UPDATE SET status = excluded.status, result = excluded.result,
           attempt = excluded.attempt, updated_at = excluded.updated_at`,
      ),
      leaseCheck: p("SELECT 1 FROM runs WHERE id = ? AND lease_owner = ? AND status = 'running'"),
    }
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Statements are prepared once per SQL text (preparing costs as much as running a claim). */
  private readonly statements = new Map<string, Database.Statement>()
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text)
    if (!st) {
      st = this.db.prepare(text)
      this.statements.set(text, st)
    }
    return st
  }

  private visibleRun(ctx: CallContext, id: string): RunRow | undefined {
    const row = this.stmts.runById.get(id) as RunRow | undefined
    if (!row || row.tenant !== ctx.tenant) return undefined
    if (!seesTenant(ctx) && row.owner !== ownerOf(ctx)) return undefined
    return row
  }

  private visibleThread(ctx: CallContext, id: string): ThreadRow | undefined {
    const row = this.stmts.threadById.get(ctx.tenant, id) as ThreadRow | undefined
    if (!row) return undefined
    if (!seesTenant(ctx) && row.owner !== ownerOf(ctx)) return undefined
    return row
  }

  private append(runId: string, events: readonly NewEvent[]): RunEvent[] {
    let seq = (this.stmts.maxEvent.get(runId) as { s: number }).s
    const at = nowIso()
    return events.map((e) => {
      seq += 1
      this.stmts.insertEvent.run(runId, seq, e.type, json(e.data), at)
      return { seq, type: e.type, data: e.data, at }
    })
  }

  private assertLease(owner: string, runId: string): void {
    if (!this.stmts.leaseCheck.get(runId, owner)) throw new LeaseLostError(runId)
  }

  private setStatus(id: string, status: RunStatus, extra = ''): void {
    this.sql(`UPDATE runs SET status = ?, updated_at = ?${extra} WHERE id = ?`).run(status, nowIso(), id)
  }

  private threadView(t: ThreadRow): ThreadRecord {
    const active = this.stmts.activeOnThread.all(t.tenant, t.id) as RunRow[]
    const status = active.some((r) => r.status === 'interrupted')
      ? 'interrupted'
      : active.length
        ? 'busy'
        : 'idle'
    return {
      id: t.id,
      tenant: t.tenant,
      owner: t.owner,
      metadata: JSON.parse(t.metadata) as Record<string, unknown>,
      state: JSON.parse(t.state) as Record<string, unknown>,
      status,
      createdAt: t.created_at,
      updatedAt: t.updated_at,
    }
  }

  private deleteRuns(ids: readonly string[]): void {
    for (const id of ids) {
      this.sql('DELETE FROM run_events WHERE run_id = ?').run(id)
      this.sql('DELETE FROM run_journal WHERE run_id = ?').run(id)
      this.sql('DELETE FROM runs WHERE id = ?').run(id)
    }
  }

  // ---- API -----------------------------------------------------------------------------------

  async create(ctx: CallContext, run: NewRun): Promise<{ run: RunRecord; displaced: string[] }> {
    const tx = this.db.transaction(() => {
      const displaced: string[] = []
      if (run.threadId) {
        const thread = this.visibleThread(ctx, run.threadId)
        if (!thread) throw new GatewayError('not_found', `thread ${run.threadId} not found`)
        const active = this.stmts.activeOnThread.all(ctx.tenant, run.threadId) as RunRow[]
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
              this.cancelNow(a, `interrupted by run ${run.id} (multitask_strategy interrupt)`)
            }
          } else if (strategy === 'rollback') {
            // Restore the state the earliest displaced run started from, then forget the runs.
            const first = active.find((a) => a.state_before !== null)
            if (first)
              this.sql('UPDATE threads SET state = ?, updated_at = ? WHERE tenant = ? AND id = ?').run(
                first.state_before,
                nowIso(),
                ctx.tenant,
                run.threadId,
              )
            for (const a of active) displaced.push(a.id)
            this.deleteRuns(displaced)
          }
        }
      }
      const now = nowIso()
      this.sql(
        `INSERT INTO runs (id, tenant, owner, caller, agent, thread_id, status, input, multitask_strategy,
             webhook, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
      ).run(
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
        now,
      )
      this.append(run.id, [{ type: 'status', data: { status: 'queued' } }])
      return { run: toRun(this.stmts.runById.get(run.id) as RunRow), displaced }
    })
    return tx.immediate()
  }

  async get(ctx: CallContext, id: string): Promise<RunRecord | undefined> {
    const row = this.visibleRun(ctx, id)
    return row ? toRun(row) : undefined
  }

  async list(ctx: CallContext, query: RunQuery = {}): Promise<{ items: RunRecord[]; next?: string }> {
    const where = ['tenant = ?']
    const args: (string | number)[] = [ctx.tenant]
    if (!seesTenant(ctx)) {
      where.push('owner = ?')
      args.push(ownerOf(ctx))
    }
    if (query.threadId) {
      where.push('thread_id = ?')
      args.push(query.threadId)
    }
    if (query.status) {
      where.push('status = ?')
      args.push(query.status)
    }
    if (query.agent) {
      where.push('agent = ?')
      args.push(query.agent)
    }
    if (query.before) {
      const [seq] = decodeCursor(query.before)
      where.push('seq < ?')
      args.push(Number(seq))
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500)
    const rows = this.sql(`SELECT * FROM runs WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`).all(
      ...args,
      limit + 1,
    ) as RunRow[]
    const page = rows.slice(0, limit)
    return {
      items: page.map(toRun),
      ...(rows.length > limit ? { next: encodeCursor([page[page.length - 1]!.seq]) } : {}),
    }
  }

  async events(ctx: CallContext, id: string, afterSeq: number, limit = 1000): Promise<RunEvent[]> {
    if (!this.visibleRun(ctx, id)) throw new GatewayError('not_found', `run ${id} not found`)
    return (
      this.stmts.events.all(id, afterSeq, limit) as { seq: number; type: string; data: string; at: string }[]
    ).map((e) => ({ seq: e.seq, type: e.type, data: JSON.parse(e.data), at: e.at }))
  }

  /** Queued or interrupted → cancelled now, with its terminal event. */
  private cancelNow(row: RunRow, reason: string): void {
    const error = { code: 'cancelled', message: reason }
    this.sql(
      `UPDATE runs SET status = 'cancelled', error = ?, lease_owner = NULL, lease_expires_at = NULL,
           updated_at = ? WHERE id = ?`,
    ).run(json(error), nowIso(), row.id)
    if (row.status === 'running') {
      // A worker may still be executing it: its next fenced write fails and it stops.
      this.sql('UPDATE runs SET cancel_requested = ? WHERE id = ?').run(reason, row.id)
    }
    this.append(row.id, [{ type: 'end', data: { status: 'cancelled', error } }])
  }

  async requestCancel(ctx: CallContext, id: string, reason: string): Promise<RunRecord | undefined> {
    const tx = this.db.transaction(() => {
      const row = this.visibleRun(ctx, id)
      if (!row) return undefined
      if (TERMINAL_STATUSES.has(row.status as RunStatus))
        throw new GatewayError('conflict', `run ${id} is already ${row.status}`)
      if (row.status === 'running' && row.lease_owner) {
        this.sql('UPDATE runs SET cancel_requested = ?, updated_at = ? WHERE id = ?').run(
          reason,
          nowIso(),
          id,
        )
      } else {
        this.cancelNow(row, reason)
      }
      return toRun(this.stmts.runById.get(id) as RunRow)
    })
    return tx.immediate()
  }

  async resume(ctx: CallContext, id: string, value: unknown): Promise<RunRecord | undefined> {
    const tx = this.db.transaction(() => {
      const row = this.visibleRun(ctx, id)
      if (!row) return undefined
      if (row.status !== 'interrupted')
        throw new GatewayError('conflict', `run ${id} is ${row.status}, not interrupted; nothing to resume`)
      const pending = this.sql(
        "SELECT pos FROM run_journal WHERE run_id = ? AND kind = 'interrupt' AND status = 'started' ORDER BY pos DESC LIMIT 1",
      ).get(id) as { pos: number } | undefined
      if (pending) {
        this.sql(
          "UPDATE run_journal SET status = 'done', result = ?, updated_at = ? WHERE run_id = ? AND pos = ?",
        ).run(json(value), nowIso(), id, pending.pos)
      }
      this.setStatus(id, 'queued', ', interrupt = NULL')
      this.append(id, [{ type: 'status', data: { status: 'queued', resumed: true } }])
      return toRun(this.stmts.runById.get(id) as RunRow)
    })
    return tx.immediate()
  }

  // ---- threads -------------------------------------------------------------------------------

  async createThread(
    ctx: CallContext,
    t: { id: string; metadata?: Record<string, unknown> },
  ): Promise<ThreadRecord> {
    const now = nowIso()
    try {
      this.sql(
        'INSERT INTO threads (id, tenant, owner, metadata, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run(t.id, ctx.tenant, ownerOf(ctx), json(t.metadata ?? {}), '{}', now, now)
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw new GatewayError('conflict', `thread ${t.id} already exists`)
      throw err
    }
    return this.threadView(this.stmts.threadById.get(ctx.tenant, t.id) as ThreadRow)
  }

  async getThread(ctx: CallContext, id: string): Promise<ThreadRecord | undefined> {
    const row = this.visibleThread(ctx, id)
    return row ? this.threadView(row) : undefined
  }

  async listThreads(
    ctx: CallContext,
    query: { limit?: number; before?: string } = {},
  ): Promise<{ items: ThreadRecord[]; next?: string }> {
    const where = ['tenant = ?']
    const args: (string | number)[] = [ctx.tenant]
    if (!seesTenant(ctx)) {
      where.push('owner = ?')
      args.push(ownerOf(ctx))
    }
    if (query.before) {
      const [createdAt, id] = decodeCursor(query.before)
      where.push('(created_at, id) < (?, ?)')
      args.push(String(createdAt), String(id))
    }
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500)
    const rows = this.sql(
      `SELECT * FROM threads WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
    ).all(...args, limit + 1) as ThreadRow[]
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    return {
      items: page.map((t) => this.threadView(t)),
      ...(rows.length > limit && last ? { next: encodeCursor([last.created_at, last.id]) } : {}),
    }
  }

  async deleteThread(ctx: CallContext, id: string): Promise<boolean> {
    const tx = this.db.transaction(() => {
      const row = this.visibleThread(ctx, id)
      if (!row) return false
      if ((this.stmts.activeOnThread.all(ctx.tenant, id) as RunRow[]).length)
        throw new GatewayError('conflict', `thread ${id} has an active run; cancel it first`)
      const runs = this.sql('SELECT id FROM runs WHERE tenant = ? AND thread_id = ?').all(ctx.tenant, id) as {
        id: string
      }[]
      this.deleteRuns(runs.map((r) => r.id))
      this.sql('DELETE FROM threads WHERE tenant = ? AND id = ?').run(ctx.tenant, id)
      return true
    })
    return tx.immediate()
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
    const tx = this.db.transaction(() => {
      const dead = deadOwners.length ? ` OR lease_owner IN (${deadOwners.map(() => '?').join(',')})` : ''
      // Queued runs whose thread has nothing earlier still active, plus running runs nobody holds.
      const rows = this.sql(
        `SELECT * FROM runs r WHERE
             (r.status = 'queued' AND (r.thread_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM runs o WHERE o.tenant = r.tenant AND o.thread_id = r.thread_id AND o.seq <> r.seq AND
                  (o.status IN ('running', 'interrupted') OR (o.status = 'queued' AND o.seq < r.seq)))))
             OR (r.status = 'running' AND (r.lease_owner IS NULL OR r.lease_expires_at < ?${dead}))
           ORDER BY r.seq LIMIT ?`,
      ).all(nowMs, ...deadOwners, limit) as RunRow[]
      const claimed: ClaimedRun[] = []
      for (const row of rows) {
        let stateBefore = row.state_before
        if (stateBefore === null) {
          const t = row.thread_id
            ? (this.stmts.threadById.get(row.tenant, row.thread_id) as ThreadRow | undefined)
            : undefined
          stateBefore = t?.state ?? '{}'
        }
        this.sql(
          `UPDATE runs SET status = 'running', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1,
               state_before = ?, updated_at = ? WHERE id = ?`,
        ).run(owner, nowMs + leaseMs, stateBefore, nowIso(), row.id)
        if (row.status === 'queued') this.append(row.id, [{ type: 'status', data: { status: 'running' } }])
        claimed.push(toClaimed(this.stmts.runById.get(row.id) as RunRow))
      }
      return claimed
    })
    return tx.immediate()
  }

  async heartbeat(
    owner: string,
    ids: readonly string[],
    nowMs: number,
    leaseMs: number,
  ): Promise<{ lost: string[]; cancel: string[] }> {
    const tx = this.db.transaction(() => {
      const lost: string[] = []
      const cancel: string[] = []
      const extend = this.sql(
        "UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
      )
      for (const id of ids) {
        if (extend.run(nowMs + leaseMs, id, owner).changes === 0) lost.push(id)
        const row = this.stmts.runById.get(id) as RunRow | undefined
        if (row?.cancel_requested) cancel.push(id)
      }
      return { lost, cancel }
    })
    return tx.immediate()
  }

  async leaseOwners(): Promise<string[]> {
    return (
      this.sql(
        "SELECT DISTINCT lease_owner AS o FROM runs WHERE status = 'running' AND lease_owner IS NOT NULL",
      ).all() as { o: string }[]
    ).map((r) => r.o)
  }

  async journal(runId: string): Promise<JournalEntry[]> {
    return (
      this.stmts.journal.all(runId) as {
        pos: number
        kind: JournalEntry['kind']
        name: string
        status: JournalEntry['status']
        result: string | null
        attempt: number
      }[]
    ).map((r) => ({
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
    this.db
      .transaction(() => {
        this.assertLease(owner, runId)
        this.stmts.upsertJournal.run(
          runId,
          entry.pos,
          entry.kind,
          entry.name,
          entry.status,
          entry.result === undefined ? null : json(entry.result),
          entry.attempt,
          nowIso(),
        )
        if (threadState) {
          const row = this.stmts.runById.get(runId) as RunRow
          if (row.thread_id)
            this.sql('UPDATE threads SET state = ?, updated_at = ? WHERE tenant = ? AND id = ?').run(
              json(threadState),
              nowIso(),
              row.tenant,
              row.thread_id,
            )
        }
      })
      .immediate()
  }

  async appendEvents(
    owner: string,
    runId: string,
    events: readonly NewEvent[],
    emitted?: number,
  ): Promise<RunEvent[]> {
    return this.db
      .transaction(() => {
        this.assertLease(owner, runId)
        if (emitted !== undefined) this.sql('UPDATE runs SET emitted = ? WHERE id = ?').run(emitted, runId)
        return this.append(runId, events)
      })
      .immediate()
  }

  async addUsage(
    owner: string,
    runId: string,
    u: { model: string; promptTokens: number; completionTokens: number },
  ): Promise<void> {
    this.db
      .transaction(() => {
        this.assertLease(owner, runId)
        const row = this.stmts.runById.get(runId) as RunRow
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
        this.sql('UPDATE runs SET usage = ? WHERE id = ?').run(json(totals), runId)
      })
      .immediate()
  }

  async interrupt(owner: string, runId: string, payload: unknown): Promise<RunEvent[]> {
    return this.db
      .transaction(() => {
        this.assertLease(owner, runId)
        this.sql(
          `UPDATE runs SET status = 'interrupted', interrupt = ?, lease_owner = NULL, lease_expires_at = NULL,
             updated_at = ? WHERE id = ?`,
        ).run(json(payload), nowIso(), runId)
        return this.append(runId, [{ type: 'interrupt', data: { status: 'interrupted', payload } }])
      })
      .immediate()
  }

  async finish(
    owner: string,
    runId: string,
    result: FinishInput,
  ): Promise<{ run: RunRecord; events: RunEvent[] } | undefined> {
    return this.db
      .transaction(() => {
        const row = this.stmts.runById.get(runId) as RunRow | undefined
        if (!row || row.lease_owner !== owner || row.status !== 'running') return undefined
        this.sql(
          `UPDATE runs SET status = ?, output = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL,
             updated_at = ? WHERE id = ?`,
        ).run(
          result.status,
          result.output === undefined ? null : json(result.output),
          result.error ? json(result.error) : null,
          nowIso(),
          runId,
        )
        const events = this.append(runId, [
          {
            type: 'end',
            data: {
              status: result.status,
              ...(result.output !== undefined ? { output: result.output } : {}),
              ...(result.error ? { error: result.error } : {}),
            },
          },
        ])
        return { run: toRun(this.stmts.runById.get(runId) as RunRow), events }
      })
      .immediate()
  }

  async release(owner: string, ids: readonly string[]): Promise<void> {
    const stmt = this.sql(
      'UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?',
    )
    this.db
      .transaction(() => {
        for (const id of ids) stmt.run(id, owner)
      })
      .immediate()
  }

  async webhookOf(runId: string): Promise<{ url: string; secret?: string } | undefined> {
    const row = this.stmts.runById.get(runId) as RunRow | undefined
    return row?.webhook ? (JSON.parse(row.webhook) as { url: string; secret?: string }) : undefined
  }
}
