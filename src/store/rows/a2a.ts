import type { PushConfigRecord, PushWireVersion } from '../a2a.js'

/** Rows of this table as both stores read them, and their mapping to records. */

export interface PushRow {
  tenant: string
  task_id: string
  id: string
  url: string
  token: string | null
  auth_scheme: string | null
  credentials: string | null
  wire_version: string
  notified_seq: number
  last_state: string
  done: number | boolean
  created_at: string
  updated_at: string
}

/** Sealed values look like `gh1.<keyId>.<body>` (vault/seal.ts). */
export const SEALED = /^gh1\.[^.]+\.[A-Za-z0-9_-]+$/

export function toRecord(r: PushRow): PushConfigRecord {
  return {
    tenant: r.tenant,
    taskId: r.task_id,
    id: r.id,
    url: r.url,
    ...(r.token !== null ? { sealedToken: r.token } : {}),
    ...(r.auth_scheme !== null ? { authScheme: r.auth_scheme } : {}),
    ...(r.credentials !== null ? { sealedCredentials: r.credentials } : {}),
    wireVersion: r.wire_version as PushWireVersion,
    notifiedSeq: r.notified_seq,
    lastState: r.last_state,
    done: r.done === true || r.done === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}
