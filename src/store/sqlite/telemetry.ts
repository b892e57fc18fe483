import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import type {
  AuditEvent,
  AuditQuery,
  AuditStore,
  CallLogStore,
  SpanRecord,
  SpanStore,
  ToolCallBatch,
} from '../types.js'
import { decodeCursor, encodeCursor } from '../scope.js'
import type { BatchWriter } from './writer.js'
import type { CallSpan } from '../../telemetry/call-log.js'
import {
  CALL_SPAN_COLUMNS,
  SPAN_COLUMNS,
  toEvent,
  toSpanOrCall,
  type AuditRow,
  type SpanReadRow,
} from '../rows/telemetry.js'

const AUDIT_INSERT = `INSERT OR IGNORE INTO audit_events (id, tenant, at, principal, principal_kind, action, target, outcome,
  error_code, args_hash, latency_ms, request_id, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

/** The AUDIT_INSERT parameters of a row. Self-contained: the writer thread runs its source (writer.ts). */
export function auditParams(e: AuditEvent): unknown[] {
  return [
    e.id,
    e.tenant,
    e.at,
    e.principal,
    e.principalKind,
    e.action,
    e.target ?? null,
    e.outcome,
    e.errorCode ?? null,
    e.argsHash ?? null,
    e.latencyMs ?? null,
    e.requestId ?? null,
    e.traceId ?? null,
  ]
}

/** A tool call's audit row with its span (src/store/rows/telemetry.ts): one row per call. */
export const CALL_INSERT = `INSERT INTO audit_events (id, tenant, at, principal, principal_kind, action, target, outcome,
  error_code, args_hash, latency_ms, request_id, trace_id, span_id, parent_span_id, start_ms, span_name, exception_type)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

/** The CALL_INSERT parameters of a decoded tool call. Self-contained but for `auditParams` (the writer thread has both). */
export function callParams(e: AuditEvent, s: CallSpan | undefined): unknown[] {
  const p = auditParams(e)
  p.push(
    s ? s.spanId : null,
    (s && s.parentSpanId) ?? null,
    s ? s.startMs : null,
    s ? s.name : null,
    (s && s.exceptionType) ?? null,
  )
  return p
}

/** The SPAN_INSERT parameters of a span. */
function spanParams(s: SpanRecord): unknown[] {
  return [
    s.traceId,
    s.spanId,
    s.parentSpanId ?? null,
    s.tenant,
    s.name,
    s.kind,
    s.startMs,
    s.durationMs,
    s.status,
    JSON.stringify(s.attributes),
  ]
}

export class SqliteAudit implements AuditStore {
  constructor(
    private readonly db: Database.Database,
    private readonly writer: BatchWriter,
  ) {}

  async append(events: AuditEvent[]): Promise<void> {
    if (!events.length) return
    await this.writer.run(AUDIT_INSERT, events.map(auditParams))
  }

  async list(ctx: CallContext, query: AuditQuery = {}): Promise<{ items: AuditEvent[]; next?: string }> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000)
    const where = ['tenant = ?']
    const args: (string | number)[] = [ctx.tenant]
    if (query.before) {
      const [seq] = decodeCursor(query.before)
      where.push('seq < ?')
      args.push(Number(seq))
    }
    if (query.action) {
      where.push('action = ?')
      args.push(query.action)
    }
    if (query.principal) {
      where.push('principal = ?')
      args.push(query.principal)
    }
    const rows = this.db
      .prepare(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`)
      .all(...args, limit + 1) as AuditRow[]
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    return {
      items: page.map(toEvent),
      ...(rows.length > limit && last ? { next: encodeCursor([last.seq]) } : {}),
    }
  }
}

const SPAN_INSERT = `INSERT INTO spans (trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms, status, attributes)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

export class SqliteSpans implements SpanStore {
  constructor(
    private readonly db: Database.Database,
    private readonly writer: BatchWriter,
  ) {}

  async append(spans: SpanRecord[]): Promise<void> {
    if (!spans.length) return
    await this.writer.run(SPAN_INSERT, spans.map(spanParams))
  }

  async listTrace(ctx: CallContext, traceId: string): Promise<SpanRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT ${SPAN_COLUMNS} FROM spans WHERE tenant = ? AND trace_id = ?
         UNION ALL
         SELECT ${CALL_SPAN_COLUMNS} FROM audit_events WHERE tenant = ? AND trace_id = ? AND span_id IS NOT NULL
         ORDER BY start_ms, seq`,
      )
      .all(ctx.tenant, traceId, ctx.tenant, traceId) as SpanReadRow[]
    return rows.map(toSpanOrCall)
  }

  /** The latest spans, newest first by start time: those of the spans table and of tool calls. */
  async recent(ctx: CallContext, limit = 100): Promise<SpanRecord[]> {
    const n = Math.min(Math.max(limit, 1), 1000)
    const rows = this.db
      .prepare(
        `SELECT * FROM (SELECT ${SPAN_COLUMNS} FROM spans WHERE tenant = ? ORDER BY seq DESC LIMIT ?)
         UNION ALL
         SELECT * FROM (SELECT ${CALL_SPAN_COLUMNS} FROM audit_events WHERE tenant = ? AND span_id IS NOT NULL
           ORDER BY seq DESC LIMIT ?)
         ORDER BY start_ms DESC, seq DESC LIMIT ?`,
      )
      .all(ctx.tenant, n, ctx.tenant, n, n) as SpanReadRow[]
    return rows.map(toSpanOrCall)
  }
}

/** Tool calls' audit rows (each with its span): decoded and inserted by the writer (off the event loop for files). */
export class SqliteCallLog implements CallLogStore {
  constructor(private readonly writer: BatchWriter) {}

  append(batch: ToolCallBatch): Promise<void> {
    return batch.count ? this.writer.calls(batch) : Promise.resolve()
  }
}
