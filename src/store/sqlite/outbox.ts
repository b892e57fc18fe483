import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { nowIso } from '../scope.js'
import type {
  ClaimedWebhookDelivery,
  NewWebhookDelivery,
  WebhookDeliveryRecord,
  WebhookOutbox,
} from '../types.js'
import { MAX_ERROR, Row, SEALED, toClaimed, toRecord } from '../rows/outbox.js'

export class SqliteWebhookOutbox implements WebhookOutbox {
  constructor(private readonly db: Database.Database) {}

  async enqueue(ctx: CallContext, d: NewWebhookDelivery): Promise<WebhookDeliveryRecord> {
    if (!d.id) throw new GatewayError('bad_request', 'webhook delivery needs an id')
    if (d.sealedSecret !== undefined && !SEALED.test(d.sealedSecret))
      throw new GatewayError('bad_request', 'webhook secret must be stored sealed')
    const now = nowIso()
    const res = this.db
      .prepare(
        `INSERT INTO webhook_deliveries (id, tenant, run_id, url, secret, payload, status, attempts,
           next_attempt_at, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)
         ON CONFLICT(id) DO NOTHING`,
      )
      .run(
        d.id,
        ctx.tenant,
        d.runId ?? null,
        d.url,
        d.sealedSecret ?? null,
        d.payload,
        Math.trunc(d.nextAttemptAtMs ?? Date.now()),
        now,
        now,
      )
    const row = this.db
      .prepare('SELECT * FROM webhook_deliveries WHERE id = ? AND tenant = ?')
      .get(d.id, ctx.tenant) as Row | undefined
    // An id taken in another tenant: say so without showing that tenant's row.
    if (!row) throw new GatewayError('conflict', `webhook delivery id ${d.id} is already in use`)
    if (res.changes === 0 && (row.url !== d.url || row.payload !== d.payload))
      throw new GatewayError('conflict', `webhook delivery ${d.id} was already enqueued with other content`)
    return toRecord(row)
  }

  async claimDue(
    owner: string,
    nowMs: number,
    limit: number,
    leaseMs: number,
  ): Promise<ClaimedWebhookDelivery[]> {
    const n = Math.min(Math.max(Math.trunc(limit), 1), 1000)
    // One statement: SQLite takes the write lock before reading, so two processes can never
    // lease the same row.
    const rows = this.db
      .prepare(
        `UPDATE webhook_deliveries
            SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated_at = ?
          WHERE id IN (
            SELECT id FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= ?
               AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
             ORDER BY next_attempt_at, id
             LIMIT ?)
          RETURNING *`,
      )
      .all(owner, Math.trunc(nowMs + leaseMs), nowIso(), Math.trunc(nowMs), Math.trunc(nowMs), n) as Row[]
    return rows
      .sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.id.localeCompare(b.id))
      .map(toClaimed)
  }

  async markDelivered(owner: string, id: string): Promise<boolean> {
    const res = this.db
      .prepare(
        `UPDATE webhook_deliveries
            SET status = 'delivered', last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
          WHERE id = ? AND lease_owner = ? AND status = 'pending'`,
      )
      .run(nowIso(), id, owner)
    return res.changes > 0
  }

  async markFailed(
    owner: string,
    id: string,
    error: string,
    nextAttemptAtMs: number | null,
  ): Promise<boolean> {
    const res = this.db
      .prepare(
        `UPDATE webhook_deliveries
            SET status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at),
                lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
          WHERE id = ? AND lease_owner = ? AND status = 'pending'`,
      )
      .run(
        nextAttemptAtMs === null ? 'dead' : 'pending',
        error.slice(0, MAX_ERROR),
        nextAttemptAtMs === null ? null : Math.trunc(nextAttemptAtMs),
        nowIso(),
        id,
        owner,
      )
    return res.changes > 0
  }

  async list(
    ctx: CallContext,
    query: { runId?: string; limit?: number } = {},
  ): Promise<WebhookDeliveryRecord[]> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000)
    const rows = (
      query.runId !== undefined
        ? this.db
            .prepare(
              'SELECT * FROM webhook_deliveries WHERE tenant = ? AND run_id = ? ORDER BY created_at, id LIMIT ?',
            )
            .all(ctx.tenant, query.runId, limit)
        : this.db
            .prepare('SELECT * FROM webhook_deliveries WHERE tenant = ? ORDER BY created_at, id LIMIT ?')
            .all(ctx.tenant, limit)
    ) as Row[]
    return rows.map(toRecord)
  }
}
