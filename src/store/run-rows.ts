import type { CallerSnapshot, ClaimedRun, RunRecord, RunStatus, UsageTotals } from './runs.js'

/**
 * Rows of the run tables as both stores read them (SQLite and PostgreSQL keep the same columns,
 * JSON as text and timestamps as ISO-8601 text), and their mapping to the store's records.
 */

export interface RunRow {
  seq: number
  id: string
  tenant: string
  owner: string
  caller: string
  agent: string
  thread_id: string | null
  status: string
  input: string
  output: string | null
  error: string | null
  interrupt: string | null
  multitask_strategy: string
  webhook: string | null
  usage: string | null
  state_before: string | null
  emitted: number
  cancel_requested: string | null
  lease_owner: string | null
  lease_expires_at: number | null
  attempts: number
  created_at: string
  updated_at: string
}

export interface ThreadRow {
  id: string
  tenant: string
  owner: string
  metadata: string
  state: string
  created_at: string
  updated_at: string
}

export const json = (v: unknown): string => JSON.stringify(v ?? null)
export const parse = (s: string | null): unknown => (s === null ? undefined : JSON.parse(s))

export function toRun(r: RunRow): RunRecord {
  const webhook = r.webhook ? (JSON.parse(r.webhook) as { url: string }) : undefined
  return {
    id: r.id,
    tenant: r.tenant,
    owner: r.owner,
    agent: r.agent,
    ...(r.thread_id ? { threadId: r.thread_id } : {}),
    status: r.status as RunStatus,
    input: JSON.parse(r.input),
    ...(r.output !== null ? { output: JSON.parse(r.output) } : {}),
    ...(r.error !== null ? { error: JSON.parse(r.error) } : {}),
    ...(r.interrupt !== null && r.status === 'interrupted' ? { interrupt: JSON.parse(r.interrupt) } : {}),
    multitaskStrategy: r.multitask_strategy as RunRecord['multitaskStrategy'],
    ...(webhook ? { webhook: { url: webhook.url } } : {}),
    ...(r.usage ? { usage: JSON.parse(r.usage) as UsageTotals } : {}),
    attempts: r.attempts,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  }
}

export function toClaimed(r: RunRow): ClaimedRun {
  return {
    ...toRun(r),
    caller: JSON.parse(r.caller) as CallerSnapshot,
    stateBefore: (parse(r.state_before) as Record<string, unknown> | undefined) ?? {},
    emitted: r.emitted,
    ...(r.cancel_requested ? { cancelRequested: r.cancel_requested } : {}),
  }
}
