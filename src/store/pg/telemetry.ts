import type { CallContext } from '../../context.js'
import { uuidV7 } from '../../ids.js'
import { decodeCalls, type CallSpan } from '../../telemetry/call-log.js'
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
import type { Db } from './db.js'
import {
  CALL_SPAN_COLUMNS,
  SPAN_COLUMNS,
  toEvent,
  toSpanOrCall,
  type AuditRow,
  type SpanReadRow,
} from '../rows/telemetry.js'

/*
 * Audit rows and spans arrive in batches from the telemetry batchers. Each batch is one
 * multi-row INSERT: one array parameter per column, expanded with unnest, so a batch of any size
 * is one statement and one round trip (no worker thread: the driver is asynchronous already).
 */

/** Rows per statement: bounds the size of one INSERT, not the batch. */
const CHUNK = 5000

const AUDIT_INSERT = `INSERT INTO audit_events (id, tenant, at, principal, principal_kind, action, target, outcome,
    error_code, args_hash, latency_ms, request_id, trace_id)
  SELECT id, tenant, at, principal, principal_kind, action, target, outcome, error_code, args_hash, latency_ms,
    request_id, trace_id
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[], $13::text[])
    WITH ORDINALITY AS t(id, tenant, at, principal, principal_kind, action, target, outcome, error_code,
      args_hash, latency_ms, request_id, trace_id, ord)
  ORDER BY ord
  ON CONFLICT (id) DO NOTHING`

/** Inserts `items` with `sql` (one array parameter per column of `cols`), CHUNK rows per statement. */
async function insertColumns<T>(
  db: Db,
  sql: string,
  items: readonly T[],
  cols: readonly ((item: T) => unknown)[],
): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) {
    const chunk = items.slice(i, i + CHUNK)
    await db.rows(
      sql,
      cols.map((col) => chunk.map(col)),
    )
  }
}

/** The AUDIT_INSERT columns of a row, in order (CALL_INSERT starts with the same). */
const AUDIT_COLUMNS: readonly ((e: AuditEvent) => unknown)[] = [
  (e) => e.id,
  (e) => e.tenant,
  (e) => e.at,
  (e) => e.principal,
  (e) => e.principalKind,
  (e) => e.action,
  (e) => e.target ?? null,
  (e) => e.outcome,
  (e) => e.errorCode ?? null,
  (e) => e.argsHash ?? null,
  (e) => e.latencyMs ?? null,
  (e) => e.requestId ?? null,
  (e) => e.traceId ?? null,
]

export class PgAudit implements AuditStore {
  constructor(private readonly db: Db) {}

  async append(events: AuditEvent[]): Promise<void> {
    await insertColumns(this.db, AUDIT_INSERT, events, AUDIT_COLUMNS)
  }

  async list(ctx: CallContext, query: AuditQuery = {}): Promise<{ items: AuditEvent[]; next?: string }> {
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 1000)
    const args: (string | number)[] = [ctx.tenant]
    const where = ['tenant = $1']
    if (query.before) {
      const [seq] = decodeCursor(query.before)
      args.push(Number(seq))
      where.push(`seq < $${args.length}`)
    }
    if (query.action) {
      args.push(query.action)
      where.push(`action = $${args.length}`)
    }
    if (query.principal) {
      args.push(query.principal)
      where.push(`principal = $${args.length}`)
    }
    args.push(limit + 1)
    const rows = await this.db.rows<AuditRow>(
      `SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT $${args.length}`,
      args,
    )
    const page = rows.slice(0, limit)
    const last = page[page.length - 1]
    return {
      items: page.map(toEvent),
      ...(rows.length > limit && last ? { next: encodeCursor([last.seq]) } : {}),
    }
  }
}

const SPAN_INSERT = `INSERT INTO spans (trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms,
    status, attributes)
  SELECT trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms, status, attributes
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[],
    $9::text[], $10::text[])
    WITH ORDINALITY AS t(trace_id, span_id, parent_span_id, tenant, name, kind, start_ms, duration_ms, status,
      attributes, ord)
  ORDER BY ord`

/** The SPAN_INSERT columns of a span, in order. */
const SPAN_INSERT_COLUMNS: readonly ((s: SpanRecord) => unknown)[] = [
  (s) => s.traceId,
  (s) => s.spanId,
  (s) => s.parentSpanId ?? null,
  (s) => s.tenant,
  (s) => s.name,
  (s) => s.kind,
  (s) => s.startMs,
  (s) => s.durationMs,
  (s) => s.status,
  (s) => JSON.stringify(s.attributes),
]

export class PgSpans implements SpanStore {
  constructor(private readonly db: Db) {}

  async append(spans: SpanRecord[]): Promise<void> {
    await insertColumns(this.db, SPAN_INSERT, spans, SPAN_INSERT_COLUMNS)
  }

  async listTrace(ctx: CallContext, traceId: string): Promise<SpanRecord[]> {
    const rows = await this.db.rows<SpanReadRow>(
      `SELECT ${SPAN_COLUMNS} FROM spans WHERE tenant = $1 AND trace_id = $2
       UNION ALL
       SELECT ${CALL_SPAN_COLUMNS} FROM audit_events WHERE tenant = $1 AND trace_id = $2 AND span_id IS NOT NULL
       ORDER BY start_ms, seq`,
      [ctx.tenant, traceId],
    )
    return rows.map(toSpanOrCall)
  }

  /** The latest spans, newest first by start time: those of the spans table and of tool calls. */
  async recent(ctx: CallContext, limit = 100): Promise<SpanRecord[]> {
    const rows = await this.db.rows<SpanReadRow>(
      `(SELECT ${SPAN_COLUMNS} FROM spans WHERE tenant = $1 ORDER BY seq DESC LIMIT $2)
       UNION ALL
       (SELECT ${CALL_SPAN_COLUMNS} FROM audit_events WHERE tenant = $1 AND span_id IS NOT NULL
         ORDER BY seq DESC LIMIT $2)
       ORDER BY start_ms DESC, seq DESC LIMIT $2`,
      [ctx.tenant, Math.min(Math.max(limit, 1), 1000)],
    )
    return rows.map(toSpanOrCall)
  }
}

const CALL_INSERT = `INSERT INTO audit_events (id, tenant, at, principal, principal_kind, action, target, outcome,
    error_code, args_hash, latency_ms, request_id, trace_id, span_id, parent_span_id, start_ms, span_name,
    exception_type)
  SELECT id, tenant, at, principal, principal_kind, action, target, outcome, error_code, args_hash, latency_ms,
    request_id, trace_id, span_id, parent_span_id, start_ms, span_name, exception_type
  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::float8[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::float8[], $17::text[], $18::text[])
    WITH ORDINALITY AS t(id, tenant, at, principal, principal_kind, action, target, outcome, error_code,
      args_hash, latency_ms, request_id, trace_id, span_id, parent_span_id, start_ms, span_name,
      exception_type, ord)
  ORDER BY ord
  ON CONFLICT (id) DO NOTHING`

type Call = readonly [AuditEvent, CallSpan | undefined]

/** The CALL_INSERT columns of a decoded call: the audit row's, then its span's. */
const CALL_COLUMNS: readonly ((c: Call) => unknown)[] = [
  ...AUDIT_COLUMNS.map((col) => (c: Call) => col(c[0])),
  ([, s]) => s?.spanId ?? null,
  ([, s]) => s?.parentSpanId ?? null,
  ([, s]) => s?.startMs ?? null,
  ([, s]) => s?.name ?? null,
  ([, s]) => s?.exceptionType ?? null,
]

/** Tool calls' audit rows, each with its span: decoded here, then one multi-row INSERT. */
export class PgCallLog implements CallLogStore {
  constructor(private readonly db: Db) {}

  async append(batch: ToolCallBatch): Promise<void> {
    const calls: Call[] = []
    decodeCalls(batch, uuidV7, (e, s) => calls.push([e, s]))
    await insertColumns(this.db, CALL_INSERT, calls, CALL_COLUMNS)
  }
}
