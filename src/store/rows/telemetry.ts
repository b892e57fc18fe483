import type { CallSpan } from '../../telemetry/call-log.js'
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

/*
 * A tool call's span lives in its audit row (`span_id` set when the trace was sampled): one row
 * per call instead of two. Span reads take both the spans table and these rows, as the columns
 * below; a call's attributes are made from the row (`attributes` is null there).
 */

/** The spans table, as a span read selects it. */
export const SPAN_COLUMNS = `seq, trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms,
  status, attributes, NULL AS principal, NULL AS target, NULL AS exception_type`

/** Tool calls' audit rows, as a span read selects them (SpanKind.CLIENT; the latency is the duration). */
export const CALL_SPAN_COLUMNS = `seq, trace_id, span_id, parent_span_id, tenant, span_name AS name, '2' AS kind,
  start_ms, latency_ms AS duration_ms, CASE WHEN outcome = 'ok' THEN 'ok' ELSE 'error' END AS status,
  NULL AS attributes, principal, target, exception_type`

/** A row of a span read: a span's own row, or a tool call's audit row (`attributes` null). */
export interface SpanReadRow extends Omit<SpanRow, 'attributes'> {
  attributes: string | null
  principal: string | null
  target: string | null
  exception_type: string | null
}

export function toSpanOrCall(r: SpanReadRow): SpanRecord {
  const span: SpanRecord = {
    traceId: r.trace_id,
    spanId: r.span_id,
    tenant: r.tenant,
    name: r.name,
    kind: r.kind,
    startMs: r.start_ms,
    durationMs: r.duration_ms,
    status: r.status as SpanRecord['status'],
    attributes:
      r.attributes !== null
        ? (JSON.parse(r.attributes) as SpanRecord['attributes'])
        : callAttributes(r.tenant, r.principal ?? '', r.target ?? '', r.exception_type),
  }
  if (r.parent_span_id) span.parentSpanId = r.parent_span_id
  return span
}

/**
 * A tool call's span attributes, from its audit row. The target is `{connector}/{tool}`
 * (connector names hold no `/`), redacted as one string when the row was written.
 */
function callAttributes(
  tenant: string,
  principal: string,
  target: string,
  exceptionType: string | null | undefined,
): SpanRecord['attributes'] {
  const slash = target.indexOf('/')
  const a: SpanRecord['attributes'] = {
    'gatehouse.tenant': tenant,
    'gatehouse.principal': principal,
    'gatehouse.connector': slash < 0 ? target : target.slice(0, slash),
    'mcp.tool.name': slash < 0 ? '' : target.slice(slash + 1),
    'mcp.method.name': 'tools/call',
  }
  if (exceptionType) a['exception.type'] = exceptionType
  return a
}

/** The span a decoded tool call will read back as (src/telemetry/call-log.ts `decodeCallRows`). */
export function callSpanRecord(e: AuditEvent, s: CallSpan): SpanRecord {
  return toSpanOrCall({
    trace_id: e.traceId!,
    span_id: s.spanId,
    parent_span_id: s.parentSpanId ?? null,
    tenant: e.tenant,
    name: s.name,
    kind: '2',
    start_ms: s.startMs,
    duration_ms: e.latencyMs!,
    status: e.outcome === 'ok' ? 'ok' : 'error',
    attributes: null,
    principal: e.principal,
    target: e.target ?? null,
    exception_type: s.exceptionType ?? null,
  })
}
