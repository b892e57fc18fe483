import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import type {
  ApprovalDecision,
  ApprovalQuery,
  ApprovalRecord,
  ApprovalStore,
  LimitStore,
  NewApproval,
} from '../policy.js'
import { decodeCursor, encodeCursor, nowIso } from '../scope.js'
import { ApprovalRow, toApproval } from '../rows/policy.js'

/** The approvals ledger on SQLite. Decisions are a conditional UPDATE: pending → decided once. */
export class SqliteApprovals implements ApprovalStore {
  private readonly stmts

  constructor(private readonly db: Database.Database) {
    const p = (sql: string) => db.prepare(sql)
    this.stmts = {
      byId: p('SELECT * FROM approvals WHERE id = ? AND tenant = ?'),
      byKey: p('SELECT * FROM approvals WHERE tenant = ? AND request_key = ?'),
      insert: p(
        `INSERT INTO approvals (id, tenant, run_id, request_key, tool, connector, tool_name, args, args_hash,
           requester, requester_key, approvers, rule, rule_reason, status, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)
         ON CONFLICT DO NOTHING`,
      ),
      decide: p(
        `UPDATE approvals SET status = ?, decision = ?, decider = ?, reason = ?, edited_args = ?, channel = ?,
           decided_at = ? WHERE id = ? AND tenant = ? AND status = 'pending' AND expires_at > ?`,
      ),
      reusable: p(
        `SELECT * FROM approvals WHERE tenant = ? AND requester_key = ? AND tool = ? AND args_hash = ?
           AND run_id IS NULL AND expires_at > ? AND used_at IS NULL AND status IN ('pending', 'approved')
         ORDER BY created_at DESC LIMIT 1`,
      ),
      markUsed: p(
        `UPDATE approvals SET used_at = ? WHERE id = ? AND tenant = ? AND status = 'approved' AND used_at IS NULL`,
      ),
      notice: p('UPDATE approvals SET notice = ? WHERE id = ? AND tenant = ?'),
      due: p(
        `SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      expire: p(
        `UPDATE approvals SET status = 'expired', decision = 'reject', decider = 'system:sweeper',
           reason = 'the approval expired before anyone decided', channel = 'sweeper', decided_at = ?
         WHERE id = ? AND status = 'pending'`,
      ),
      unnotified: p(
        `SELECT * FROM approvals WHERE run_id IS NOT NULL AND run_notified = 0 AND status != 'pending'
         ORDER BY created_at LIMIT ?`,
      ),
      notified: p('UPDATE approvals SET run_notified = 1 WHERE id = ?'),
    }
  }

  private row(ctx: CallContext, id: string): ApprovalRow | undefined {
    return this.stmts.byId.get(id, ctx.tenant) as ApprovalRow | undefined
  }

  async create(ctx: CallContext, a: NewApproval): Promise<{ approval: ApprovalRecord; created: boolean }> {
    const res = this.stmts.insert.run(
      a.id,
      ctx.tenant,
      a.runId ?? null,
      a.requestKey ?? null,
      a.tool,
      a.connector,
      a.toolName,
      JSON.stringify(a.args),
      a.argsHash,
      JSON.stringify({ principal: a.requester, roles: a.requesterRoles }),
      a.requesterKey,
      JSON.stringify(a.approvers),
      a.rule,
      a.ruleReason ?? null,
      a.expiresAt,
      nowIso(),
    )
    if (res.changes === 1) return { approval: toApproval(this.row(ctx, a.id)!), created: true }
    const existing = a.requestKey
      ? (this.stmts.byKey.get(ctx.tenant, a.requestKey) as ApprovalRow | undefined)
      : undefined
    if (!existing) throw new GatewayError('conflict', `approval ${a.id} already exists`)
    return { approval: toApproval(existing), created: false }
  }

  async get(ctx: CallContext, id: string): Promise<ApprovalRecord | undefined> {
    const r = this.row(ctx, id)
    return r ? toApproval(r) : undefined
  }

  async byRequestKey(ctx: CallContext, requestKey: string): Promise<ApprovalRecord | undefined> {
    const r = this.stmts.byKey.get(ctx.tenant, requestKey) as ApprovalRow | undefined
    return r ? toApproval(r) : undefined
  }

  async reusable(
    ctx: CallContext,
    q: { requesterKey: string; tool: string; argsHash: string; nowIso: string },
  ): Promise<ApprovalRecord | undefined> {
    const r = this.stmts.reusable.get(ctx.tenant, q.requesterKey, q.tool, q.argsHash, q.nowIso) as
      ApprovalRow | undefined
    return r ? toApproval(r) : undefined
  }

  async list(ctx: CallContext, q: ApprovalQuery = {}): Promise<{ items: ApprovalRecord[]; next?: string }> {
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 500)
    const where = ['tenant = ?']
    const args: (string | number)[] = [ctx.tenant]
    if (q.status) {
      where.push('status = ?')
      args.push(q.status)
    }
    if (q.runId) {
      where.push('run_id = ?')
      args.push(q.runId)
    }
    if (q.requesterKey) {
      where.push('requester_key = ?')
      args.push(q.requesterKey)
    }
    if (q.before) {
      const [at, id] = decodeCursor(q.before)
      where.push('(created_at < ? OR (created_at = ? AND id < ?))')
      args.push(String(at), String(at), String(id))
    }
    const rows = this.db
      .prepare(
        `SELECT * FROM approvals WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
      )
      .all(...args, limit + 1) as ApprovalRow[]
    const items = rows.slice(0, limit).map(toApproval)
    const last = items.at(-1)
    return rows.length > limit && last ? { items, next: encodeCursor([last.createdAt, last.id]) } : { items }
  }

  async decide(
    ctx: CallContext,
    id: string,
    d: ApprovalDecision,
    now: string,
  ): Promise<{ approval: ApprovalRecord; changed: boolean } | undefined> {
    const res = this.stmts.decide.run(
      d.status,
      d.decision,
      d.decider,
      d.reason ?? null,
      d.editedArgs ? JSON.stringify(d.editedArgs) : null,
      d.channel,
      now,
      id,
      ctx.tenant,
      now,
    )
    const r = this.row(ctx, id)
    return r ? { approval: toApproval(r), changed: res.changes === 1 } : undefined
  }

  async markUsed(ctx: CallContext, id: string, now: string): Promise<boolean> {
    return this.stmts.markUsed.run(now, id, ctx.tenant).changes === 1
  }

  async setNotice(ctx: CallContext, id: string, notice: Record<string, unknown>): Promise<void> {
    this.stmts.notice.run(JSON.stringify(notice), id, ctx.tenant)
  }

  async expireDue(now: string, limit: number): Promise<ApprovalRecord[]> {
    return this.db
      .transaction(() => {
        const out: ApprovalRecord[] = []
        for (const r of this.stmts.due.all(now, limit) as ApprovalRow[]) {
          if (this.stmts.expire.run(now, r.id).changes === 1)
            out.push(toApproval(this.stmts.byId.get(r.id, r.tenant) as ApprovalRow))
        }
        return out
      })
      .immediate()
  }

  async unnotified(limit: number): Promise<ApprovalRecord[]> {
    return (this.stmts.unnotified.all(limit) as ApprovalRow[]).map(toApproval)
  }

  async markNotified(id: string): Promise<void> {
    this.stmts.notified.run(id)
  }
}

/** Budget counters and token buckets on SQLite: single statements or IMMEDIATE transactions. */
export class SqliteLimits implements LimitStore {
  private readonly stmts

  constructor(private readonly db: Database.Database) {
    const p = (sql: string) => db.prepare(sql)
    this.stmts = {
      ensure: p(
        'INSERT INTO limit_counters (key, period, used, updated_at) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING',
      ),
      reserve: p(
        `UPDATE limit_counters SET used = used + ?, updated_at = ? WHERE key = ? AND period = ? AND used + ? <= ?
         RETURNING used`,
      ),
      add: p(
        `INSERT INTO limit_counters (key, period, used, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(key, period) DO UPDATE SET used = used + excluded.used, updated_at = excluded.updated_at
         RETURNING used`,
      ),
      used: p('SELECT used FROM limit_counters WHERE key = ? AND period = ?'),
      bucket: p('SELECT tokens, updated_ms FROM limit_buckets WHERE key = ?'),
      putBucket: p(
        `INSERT INTO limit_buckets (key, tokens, updated_ms) VALUES (?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms`,
      ),
    }
  }

  async reserve(key: string, period: string, amount: number, limit: number) {
    const now = nowIso()
    this.stmts.ensure.run(key, period, now)
    const row = this.stmts.reserve.get(amount, now, key, period, amount, limit) as
      { used: number } | undefined
    if (row) return { ok: true, used: row.used }
    return { ok: false, used: (this.stmts.used.get(key, period) as { used: number } | undefined)?.used ?? 0 }
  }

  async add(key: string, period: string, amount: number): Promise<number> {
    return (this.stmts.add.get(key, period, amount, nowIso()) as { used: number }).used
  }

  async used(key: string, period: string): Promise<number> {
    return (this.stmts.used.get(key, period) as { used: number } | undefined)?.used ?? 0
  }

  async take(key: string, capacity: number, ratePerMs: number, nowMs: number, n = 1) {
    return this.db
      .transaction(() => {
        const b = this.stmts.bucket.get(key) as { tokens: number; updated_ms: number } | undefined
        // A clock that went back (another process, NTP) never refills twice.
        const at = b ? Math.max(nowMs, b.updated_ms) : nowMs
        const tokens = b ? Math.min(capacity, b.tokens + (at - b.updated_ms) * ratePerMs) : capacity
        if (tokens >= n) {
          this.stmts.putBucket.run(key, tokens - n, at)
          return { ok: true, retryAfterMs: 0 }
        }
        // Record the refill so far; the caller waits for the rest.
        this.stmts.putBucket.run(key, tokens, at)
        return { ok: false, retryAfterMs: Math.ceil((n - tokens) / ratePerMs) }
      })
      .immediate()
  }
}
