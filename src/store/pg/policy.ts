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
import type { Db } from './db.js'
import { ApprovalRow, toApproval } from '../rows/policy.js'

/** The approvals ledger on PostgreSQL. Decisions are a conditional UPDATE: pending → decided once. */
export class PgApprovals implements ApprovalStore {
  constructor(private readonly db: Db) {}

  private async row(tenant: string, id: string): Promise<ApprovalRow | undefined> {
    return this.db.one<ApprovalRow>('SELECT * FROM approvals WHERE id = $1 AND tenant = $2', [id, tenant])
  }

  async create(ctx: CallContext, a: NewApproval): Promise<{ approval: ApprovalRecord; created: boolean }> {
    const inserted = await this.db.one<ApprovalRow>(
      `INSERT INTO approvals (id, tenant, run_id, request_key, tool, connector, tool_name, args, args_hash,
         requester, requester_key, approvers, rule, rule_reason, status, expires_at, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'pending', $15, $16)
       ON CONFLICT DO NOTHING
       RETURNING *`,
      [
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
      ],
    )
    if (inserted) return { approval: toApproval(inserted), created: true }
    const existing = a.requestKey
      ? await this.db.one<ApprovalRow>('SELECT * FROM approvals WHERE tenant = $1 AND request_key = $2', [
          ctx.tenant,
          a.requestKey,
        ])
      : undefined
    if (!existing) throw new GatewayError('conflict', `approval ${a.id} already exists`)
    return { approval: toApproval(existing), created: false }
  }

  async get(ctx: CallContext, id: string): Promise<ApprovalRecord | undefined> {
    const r = await this.row(ctx.tenant, id)
    return r ? toApproval(r) : undefined
  }

  async byRequestKey(ctx: CallContext, requestKey: string): Promise<ApprovalRecord | undefined> {
    const r = await this.db.one<ApprovalRow>(
      'SELECT * FROM approvals WHERE tenant = $1 AND request_key = $2',
      [ctx.tenant, requestKey],
    )
    return r ? toApproval(r) : undefined
  }

  async reusable(
    ctx: CallContext,
    q: { requesterKey: string; tool: string; argsHash: string; nowIso: string },
  ): Promise<ApprovalRecord | undefined> {
    const r = await this.db.one<ApprovalRow>(
      `SELECT * FROM approvals WHERE tenant = $1 AND requester_key = $2 AND tool = $3 AND args_hash = $4
         AND run_id IS NULL AND expires_at > $5 AND used_at IS NULL AND status IN ('pending', 'approved')
       ORDER BY created_at DESC LIMIT 1`,
      [ctx.tenant, q.requesterKey, q.tool, q.argsHash, q.nowIso],
    )
    return r ? toApproval(r) : undefined
  }

  async list(ctx: CallContext, q: ApprovalQuery = {}): Promise<{ items: ApprovalRecord[]; next?: string }> {
    const limit = Math.min(Math.max(q.limit ?? 50, 1), 500)
    const args: (string | number)[] = [ctx.tenant]
    const where = ['tenant = $1']
    const add = (cond: string, ...vs: (string | number)[]) => {
      let sql = cond
      for (const v of vs) {
        args.push(v)
        sql = sql.replace('?', `$${args.length}`)
      }
      where.push(sql)
    }
    if (q.status) add('status = ?', q.status)
    if (q.runId) add('run_id = ?', q.runId)
    if (q.requesterKey) add('requester_key = ?', q.requesterKey)
    if (q.before) {
      const [at, id] = decodeCursor(q.before)
      const when = new Date(String(at))
      if (Number.isNaN(when.getTime())) throw new GatewayError('bad_request', 'invalid cursor')
      add('(created_at, id) < (?::timestamptz, ?)', when.toISOString(), String(id))
    }
    args.push(limit + 1)
    const rows = await this.db.rows<ApprovalRow>(
      `SELECT * FROM approvals WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${args.length}`,
      args,
    )
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
    const changed = await this.db.one<ApprovalRow>(
      `UPDATE approvals SET status = $1, decision = $2, decider = $3, reason = $4, edited_args = $5, channel = $6,
         decided_at = $7 WHERE id = $8 AND tenant = $9 AND status = 'pending' AND expires_at > $7
       RETURNING *`,
      [
        d.status,
        d.decision,
        d.decider,
        d.reason ?? null,
        d.editedArgs ? JSON.stringify(d.editedArgs) : null,
        d.channel,
        now,
        id,
        ctx.tenant,
      ],
    )
    if (changed) return { approval: toApproval(changed), changed: true }
    const r = await this.row(ctx.tenant, id)
    return r ? { approval: toApproval(r), changed: false } : undefined
  }

  async markUsed(ctx: CallContext, id: string, now: string): Promise<boolean> {
    const n = await this.db.count(
      `UPDATE approvals SET used_at = $1 WHERE id = $2 AND tenant = $3 AND status = 'approved' AND used_at IS NULL`,
      [now, id, ctx.tenant],
    )
    return n === 1
  }

  async setNotice(ctx: CallContext, id: string, notice: Record<string, unknown>): Promise<void> {
    await this.db.count('UPDATE approvals SET notice = $1 WHERE id = $2 AND tenant = $3', [
      JSON.stringify(notice),
      id,
      ctx.tenant,
    ])
  }

  async expireDue(now: string, limit: number): Promise<ApprovalRecord[]> {
    // One statement; two sweepers skip each other's rows instead of expiring them twice.
    const rows = await this.db.rows<ApprovalRow>(
      `UPDATE approvals SET status = 'expired', decision = 'reject', decider = 'system:sweeper',
         reason = 'the approval expired before anyone decided', channel = 'sweeper', decided_at = $1
       WHERE id IN (
         SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1
          ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         AND status = 'pending'
       RETURNING *`,
      [now, Math.max(0, Math.trunc(limit))],
    )
    return rows
      .sort((a, b) => (a.expires_at < b.expires_at ? -1 : a.expires_at > b.expires_at ? 1 : 0))
      .map(toApproval)
  }

  async unnotified(limit: number): Promise<ApprovalRecord[]> {
    const rows = await this.db.rows<ApprovalRow>(
      `SELECT * FROM approvals WHERE run_id IS NOT NULL AND NOT run_notified AND status <> 'pending'
       ORDER BY created_at LIMIT $1`,
      [Math.max(0, Math.trunc(limit))],
    )
    return rows.map(toApproval)
  }

  async markNotified(id: string): Promise<void> {
    await this.db.count('UPDATE approvals SET run_notified = true WHERE id = $1', [id])
  }
}

/** Budget counters and token buckets on PostgreSQL: single statements, or a transaction on a locked row. */
export class PgLimits implements LimitStore {
  constructor(private readonly db: Db) {}

  async reserve(key: string, period: string, amount: number, limit: number) {
    const now = nowIso()
    // The conditional increment is one statement: concurrent reservations queue on the row lock
    // and each sees the count the previous one left.
    await this.db.count(
      'INSERT INTO limit_counters (key, period, used, updated_at) VALUES ($1, $2, 0, $3) ON CONFLICT (key, period) DO NOTHING',
      [key, period, now],
    )
    const row = await this.db.one<{ used: number }>(
      `UPDATE limit_counters SET used = used + $1, updated_at = $2
        WHERE key = $3 AND period = $4 AND used + $1 <= $5
        RETURNING used`,
      [amount, now, key, period, limit],
    )
    if (row) return { ok: true, used: row.used }
    return { ok: false, used: await this.used(key, period) }
  }

  async add(key: string, period: string, amount: number): Promise<number> {
    const row = await this.db.one<{ used: number }>(
      `INSERT INTO limit_counters AS c (key, period, used, updated_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (key, period) DO UPDATE SET used = c.used + excluded.used, updated_at = excluded.updated_at
       RETURNING used`,
      [key, period, amount, nowIso()],
    )
    return row!.used
  }

  async used(key: string, period: string): Promise<number> {
    const row = await this.db.one<{ used: number }>(
      'SELECT used FROM limit_counters WHERE key = $1 AND period = $2',
      [key, period],
    )
    return row?.used ?? 0
  }

  async take(key: string, capacity: number, ratePerMs: number, nowMs: number, n = 1) {
    return this.db.tx(async (c) => {
      // Create the bucket full if it is new, then work on the locked row.
      await c.query(
        `INSERT INTO limit_buckets (key, tokens, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
        [key, capacity, nowMs],
      )
      const b = (
        await c.query<{ tokens: number; updated_ms: number }>(
          'SELECT tokens, updated_ms FROM limit_buckets WHERE key = $1 FOR UPDATE',
          [key],
        )
      ).rows[0]!
      // A clock that went back (another process, NTP) never refills twice.
      const at = Math.max(nowMs, b.updated_ms)
      const tokens = Math.min(capacity, b.tokens + (at - b.updated_ms) * ratePerMs)
      const ok = tokens >= n
      // Record the refill so far; on refusal the caller waits for the rest.
      await c.query('UPDATE limit_buckets SET tokens = $1, updated_ms = $2 WHERE key = $3', [
        ok ? tokens - n : tokens,
        at,
        key,
      ])
      return ok
        ? { ok: true, retryAfterMs: 0 }
        : { ok: false, retryAfterMs: Math.ceil((n - tokens) / ratePerMs) }
    })
  }
}
