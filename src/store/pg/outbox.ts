import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { nowIso } from '../scope.js'
import type {
  ClaimedWebhookDelivery,
  NewWebhookDelivery,
  WebhookDeliveryRecord,
  WebhookOutbox,
} from '../types.js'
import type { Db } from './db.js'
import { MAX_ERROR, Row, SEALED, toClaimed, toRecord } from '../rows/outbox.js'

export class PgWebhookOutbox implements WebhookOutbox {
  constructor(private readonly db: Db) {}

  async enqueue(ctx: CallContext, d: NewWebhookDelivery): Promise<WebhookDeliveryRecord> {
    if (!d.id) throw new GatewayError('bad_request', 'webhook delivery needs an id')
    if (d.sealedSecret !== undefined && !SEALED.test(d.sealedSecret))
      throw new GatewayError('bad_request', 'webhook secret must be stored sealed')
    const now = nowIso()
    const inserted = await this.db.count(
      `INSERT INTO webhook_deliveries (id, tenant, run_id, url, secret, payload, status, attempts,
         next_attempt_at, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8)
       ON CONFLICT (id) DO NOTHING`,
      [
        d.id,
        ctx.tenant,
        d.runId ?? null,
        d.url,
        d.sealedSecret ?? null,
        d.payload,
        Math.trunc(d.nextAttemptAtMs ?? Date.now()),
        now,
      ],
    )
    const row = await this.db.one<Row>('SELECT * FROM webhook_deliveries WHERE id = $1 AND tenant = $2', [
      d.id,
      ctx.tenant,
    ])
    // An id taken in another tenant: say so without showing that tenant's row.
    if (!row) throw new GatewayError('conflict', `webhook delivery id ${d.id} is already in use`)
    if (inserted === 0 && (row.url !== d.url || row.payload !== d.payload))
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
    const now = Math.trunc(nowMs)
    // One statement. Rows another sender is claiming right now are skipped, not waited for, so
    // two senders never lease the same delivery and never block each other.
    const rows = await this.db.rows<Row>(
      `UPDATE webhook_deliveries
          SET lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1, updated_at = $3
        WHERE id IN (
          SELECT id FROM webhook_deliveries
           WHERE status = 'pending' AND next_attempt_at <= $4
             AND (lease_expires_at IS NULL OR lease_expires_at <= $4)
           ORDER BY next_attempt_at, id
           LIMIT $5
           FOR UPDATE SKIP LOCKED)
        RETURNING *`,
      [owner, Math.trunc(nowMs + leaseMs), nowIso(), now, n],
    )
    return rows
      .sort((a, b) => a.next_attempt_at - b.next_attempt_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(toClaimed)
  }

  async markDelivered(owner: string, id: string): Promise<boolean> {
    const n = await this.db.count(
      `UPDATE webhook_deliveries
          SET status = 'delivered', last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
        WHERE id = $2 AND lease_owner = $3 AND status = 'pending'`,
      [nowIso(), id, owner],
    )
    return n > 0
  }

  async markFailed(
    owner: string,
    id: string,
    error: string,
    nextAttemptAtMs: number | null,
  ): Promise<boolean> {
    const n = await this.db.count(
      `UPDATE webhook_deliveries
          SET status = $1, last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at),
              lease_owner = NULL, lease_expires_at = NULL, updated_at = $4
        WHERE id = $5 AND lease_owner = $6 AND status = 'pending'`,
      [
        nextAttemptAtMs === null ? 'dead' : 'pending',
        error.slice(0, MAX_ERROR),
        nextAttemptAtMs === null ? null : Math.trunc(nextAttemptAtMs),
        nowIso(),
        id,
        owner,
      ],
    )
    return n > 0
  }

  async list(
    ctx: CallContext,
    query: { runId?: string; limit?: number } = {},
  ): Promise<WebhookDeliveryRecord[]> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000)
    const rows =
      query.runId !== undefined
        ? await this.db.rows<Row>(
            'SELECT * FROM webhook_deliveries WHERE tenant = $1 AND run_id = $2 ORDER BY created_at, id LIMIT $3',
            [ctx.tenant, query.runId, limit],
          )
        : await this.db.rows<Row>(
            'SELECT * FROM webhook_deliveries WHERE tenant = $1 ORDER BY created_at, id LIMIT $2',
            [ctx.tenant, limit],
          )
    return rows.map(toRecord)
  }
}
