import type { AuditEvent, SpanRecord } from '../types.js'

/** Audit and span rows as both stores read them, and their mapping to records. */

export interface AuditRow {
  seq: number
  id: string
  tenant: string
  at: string
  principal: string
  principal_kind: string
  action: string
  target: string | null
  outcome: string
  error_code: string | null
  args_hash: string | null
  latency_ms: number | null
  request_id: string | null
  trace_id: string | null
}

export function toEvent(r: AuditRow): AuditEvent {
  const e: AuditEvent = {
    id: r.id,
    tenant: r.tenant,
    at: r.at,
    principal: r.principal,
    principalKind: r.principal_kind,
    action: r.action,
    outcome: r.outcome as AuditEvent['outcome'],
  }
  if (r.target !== null) e.target = r.target
  if (r.error_code !== null) e.errorCode = r.error_code
  if (r.args_hash !== null) e.argsHash = r.args_hash
  if (r.latency_ms !== null) e.latencyMs = r.latency_ms
  if (r.request_id !== null) e.requestId = r.request_id
  if (r.trace_id !== null) e.traceId = r.trace_id
  return e
}

export interface SpanRow {
  trace_id: string
  span_id: string
  parent_span_id: string | null
  tenant: string
  name: string
  kind: string
  start_ms: number
  duration_ms: number
  status: string
  attributes: string
}

export const toSpan = (r: SpanRow): SpanRecord => ({
  traceId: r.trace_id,
  spanId: r.span_id,
  ...(r.parent_span_id ? { parentSpanId: r.parent_span_id } : {}),
  tenant: r.tenant,
  name: r.name,
  kind: r.kind,
  startMs: r.start_ms,
  durationMs: r.duration_ms,
  status: r.status as SpanRecord['status'],
  attributes: JSON.parse(r.attributes) as SpanRecord['attributes'],
})
