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
import { toEvent, toSpan, type AuditRow, type SpanRow } from '../rows/telemetry.js'

export const AUDIT_INSERT = `INSERT OR IGNORE INTO audit_events (id, tenant, at, principal, principal_kind, action, target, outcome,
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

/** The SPAN_INSERT parameters of a span (`attributes`: its attributes' JSON, if made already). Self-contained, as `auditParams`. */
export function spanParams(s: SpanRecord, attributes: string = JSON.stringify(s.attributes)): unknown[] {
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
    attributes,
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

export const SPAN_INSERT = `INSERT INTO spans (trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms, status, attributes)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

export class SqliteSpans implements SpanStore {
  constructor(
    private readonly db: Database.Database,
    private readonly writer: BatchWriter,
  ) {}

  async append(spans: SpanRecord[]): Promise<void> {
    if (!spans.length) return
    await this.writer.run(
      SPAN_INSERT,
      spans.map((s) => spanParams(s)),
    )
  }

  async listTrace(ctx: CallContext, traceId: string): Promise<SpanRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM spans WHERE tenant = ? AND trace_id = ? ORDER BY start_ms, seq')
      .all(ctx.tenant, traceId) as SpanRow[]
    return rows.map(toSpan)
  }

  async recent(ctx: CallContext, limit = 100): Promise<SpanRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM spans WHERE tenant = ? ORDER BY seq DESC LIMIT ?')
      .all(ctx.tenant, Math.min(Math.max(limit, 1), 1000)) as SpanRow[]
    return rows.map(toSpan)
  }
}

/** Tool calls' audit rows and spans: decoded and inserted by the writer (off the event loop for files). */
export class SqliteCallLog implements CallLogStore {
  constructor(private readonly writer: BatchWriter) {}

  append(batch: ToolCallBatch): Promise<void> {
    return batch.count ? this.writer.calls(batch) : Promise.resolve()
  }
}
