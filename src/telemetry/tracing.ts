import {
  context as otelContext,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { Logger } from '../log.js'
import type { SpanRecord, SpanStore } from '../store/types.js'
import { Batcher } from './batch.js'
import { GatewayTracer, SpanIds, traceHeaders, type FinishedSpan } from './tracer.js'

export const TENANT_ATTR = 'gatehouse.tenant'
const propagator = new W3CTraceContextPropagator()

/** A copy of the span with its name and string attributes passed through `redact` (ids and tenant stay). */
export function redactSpan(s: SpanRecord, redact: (s: string) => string): SpanRecord {
  const attributes: SpanRecord['attributes'] = {}
  for (const k in s.attributes) {
    const v = s.attributes[k]!
    attributes[k] = typeof v === 'string' && k !== TENANT_ATTR ? redact(v) : v
  }
  const out: SpanRecord = Object.assign({}, s)
  out.name = redact(s.name)
  out.attributes = attributes
  return out
}

const storable = (v: unknown): v is string | number | boolean =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'

/** A finished span as the span store keeps it: string, number and boolean attributes only. */
function toRecord(span: FinishedSpan): SpanRecord {
  // An ended span's attributes no longer change: kept as they are unless a value must be dropped.
  let attributes = span.attributes as SpanRecord['attributes']
  for (const k in span.attributes) {
    if (!storable(span.attributes[k])) {
      attributes = {}
      for (const j in span.attributes) {
        const v = span.attributes[j]
        if (storable(v)) attributes[j] = v
      }
      break
    }
  }
  return {
    traceId: span.context.traceId,
    spanId: span.context.spanId,
    ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
    tenant: String(span.attributes[TENANT_ATTR] ?? 'default'),
    name: span.name,
    kind: String(span.kind),
    startMs: span.startMs,
    durationMs: span.durationMs,
    status: span.status.code === SpanStatusCode.ERROR ? 'error' : 'ok',
    attributes,
  }
}

export interface TelemetryOptions {
  spans: SpanStore
  logger: Logger
  flushMs?: number
  /** Replaces PII and secrets in span names and string attributes before they are stored. */
  redact?: (s: string) => string
}

/** One tracer per gateway instance (no global provider), plus W3C trace-context helpers. */
export class Telemetry {
  readonly tracer: Tracer
  /** Span ids for spans made outside the tracer (tool calls, src/telemetry/call-log.ts). */
  readonly spanIds = new SpanIds()
  private readonly batch: Batcher<SpanRecord>

  constructor({ spans, logger, flushMs = 500, redact }: TelemetryOptions) {
    // Finished spans are batched into the SpanStore (the console's trace view reads them from
    // there); redaction runs on the batch, off the call's path.
    this.batch = new Batcher({
      write: (records) => spans.append(redact ? records.map((r) => redactSpan(r, redact)) : records),
      logger,
      what: 'span',
      flushMs,
    })
    this.tracer = new GatewayTracer((span) => this.batch.push(toRecord(span)))
  }

  /** The parent context carried by an incoming `traceparent` header, if any. */
  extract(traceparent?: string, tracestate?: string): Context {
    if (!traceparent) return otelContext.active()
    const carrier: Record<string, string> = { traceparent }
    if (tracestate) carrier.tracestate = tracestate
    return propagator.extract(otelContext.active(), carrier, {
      get: (c, k) => c[k],
      keys: (c) => Object.keys(c),
    })
  }

  /** The caller's span from its `traceparent` (and `tracestate`), if the header is present and valid. */
  parentOf(traceparent: string, tracestate?: string): SpanContext | undefined {
    const sc = trace.getSpanContext(this.extract(traceparent, tracestate))
    return sc && trace.isSpanContextValid(sc) ? sc : undefined
  }

  /** Headers that carry `span` to an upstream (W3C traceparent / tracestate). */
  inject(span: Span): Record<string, string> {
    return traceHeaders(span)
  }

  async flush(): Promise<void> {
    await this.batch.flush()
  }

  async close(): Promise<void> {
    await this.batch.close()
  }
}
