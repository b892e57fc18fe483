import type { ClaimedWebhookDelivery, WebhookDeliveryRecord, WebhookStatus } from '../types.js'

/** Rows of this table as both stores read them, and their mapping to records. */

export interface Row {
  id: string
  tenant: string
  run_id: string | null
  url: string
  secret: string | null
  payload: string
  status: string
  attempts: number
  next_attempt_at: number
  last_error: string | null
  lease_owner: string | null
  lease_expires_at: number | null
  created_at: string
  updated_at: string
}

/** Sealed values look like `gh1.<keyId>.<body>` (vault/seal.ts). */
export const SEALED = /^gh1\.[^.]+\.[A-Za-z0-9_-]+$/
/** Longest last_error kept: enough to diagnose, bounded so a chatty failure cannot bloat the table. */
export const MAX_ERROR = 500

export function toRecord(r: Row): WebhookDeliveryRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    ...(r.run_id !== null ? { runId: r.run_id } : {}),
    url: r.url,
    hasSecret: r.secret !== null,
    payload: r.payload,
    status: r.status as WebhookStatus,
    attempts: r.attempts,
    nextAttemptAtMs: r.next_attempt_at,
    ...(r.last_error !== null ? { lastError: r.last_error } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

export function toClaimed(r: Row): ClaimedWebhookDelivery {
  return {
    ...toRecord(r),
    ...(r.secret !== null ? { sealedSecret: r.secret } : {}),
    attempt: r.attempts,
    leaseExpiresAtMs: r.lease_expires_at ?? 0,
  }
}
