import { randomFillSync } from 'node:crypto'
import {
  context as otelContext,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type Link,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type TraceState,
  type Tracer,
} from '@opentelemetry/api'
import { timeOrderedTraceId } from '../ids.js'

/** What a finished span hands to its sink: everything the span store keeps. */
export interface FinishedSpan {
  readonly context: SpanContext
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: SpanKind
  /** Unix milliseconds, sub-millisecond precision. */
  readonly startMs: number
  readonly durationMs: number
  readonly status: SpanStatus
  readonly attributes: Attributes
}

/** The sink is called once per span, when it ends. */
export type SpanSink = (span: FinishedSpan) => void

/** Random span ids (16 hex digits, never all zero), drawn from a pooled buffer of random bytes. */
export class SpanIds {
  private pool = Buffer.alloc(0)
  private at = 0

  next(): string {
    for (;;) {
      if (this.at + 8 > this.pool.length) {
        this.pool = randomFillSync(Buffer.allocUnsafe(4096))
        this.at = 0
      }
      const id = this.pool.toString('hex', this.at, (this.at += 8))
      if (id !== '0000000000000000') return id
    }
  }
}

/** Milliseconds since the epoch, sub-millisecond, on the monotonic clock. */
const nowMs = (): number => performance.timeOrigin + performance.now()

function toMs(t: TimeInput): number {
  if (typeof t === 'number') return t < performance.timeOrigin / 2 ? performance.timeOrigin + t : t
  if (t instanceof Date) return t.getTime()
  return t[0] * 1000 + t[1] / 1e6
}

/**
 * A span that records into the gateway's span store. It implements the OpenTelemetry API's `Span`;
 * events and links have no column in the store, so they are accepted and not kept (as the SDK's
 * processor in front of that store did before).
 */
class RecordingSpan implements Span, FinishedSpan {
  attributes: Attributes
  status: SpanStatus = { code: SpanStatusCode.UNSET }
  readonly startMs: number
  durationMs = 0
  private ended = false

  constructor(
    private readonly sink: SpanSink,
    readonly context: SpanContext,
    readonly parentSpanId: string | undefined,
    public name: string,
    readonly kind: SpanKind,
    attributes: Attributes | undefined,
    startTime: TimeInput | undefined,
  ) {
    this.attributes = {}
    if (attributes) this.setAttributes(attributes)
    this.startMs = startTime === undefined ? nowMs() : toMs(startTime)
  }

  spanContext(): SpanContext {
    return this.context
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (!this.ended && key && value !== undefined && value !== null) this.attributes[key] = value
    return this
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key]!)
    return this
  }

  addEvent(): this {
    return this
  }

  addLink(_link: Link): this {
    return this
  }

  addLinks(_links: Link[]): this {
    return this
  }

  /** As the API specifies: OK is final, and UNSET never replaces a status. */
  setStatus(status: SpanStatus): this {
    if (this.ended || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK)
      return this
    this.status = status
    return this
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name
    return this
  }

  end(endTime?: TimeInput): void {
    if (this.ended) return
    this.ended = true
    this.durationMs = Math.max(0, (endTime === undefined ? nowMs() : toMs(endTime)) - this.startMs)
    this.sink(this)
  }

  isRecording(): boolean {
    return !this.ended
  }

  /** The exception's type goes on the span (its message may hold caller data; the status says what failed). */
  recordException(exception: Exception): void {
    if (this.ended) return
    const type =
      typeof exception === 'string'
        ? 'Error'
        : (exception.name ?? (exception.code !== undefined ? String(exception.code) : undefined))
    if (type) this.attributes['exception.type'] = type
  }
}

/**
 * The gateway's OpenTelemetry `Tracer`: spans are children of the context's span (a caller's
 * `traceparent`, extracted), new traces get time-ordered ids (src/ids.ts), and every sampled span
 * goes to the sink when it ends. A parent that is not sampled (trace flags 00) yields a
 * non-recording span that still propagates the trace, as the SDK's default parent-based sampler
 * does.
 *
 * Written for the hot path instead of the OpenTelemetry SDK's BasicTracerProvider, which cost
 * ~8 µs of CPU per tool call here (attribute sanitising twice, a sampler, tracer metrics, a
 * processor chain) for spans that only ever went to the span store.
 */
export class GatewayTracer implements Tracer {
  private readonly ids = new SpanIds()

  constructor(private readonly sink: SpanSink) {}

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = otelContext.active()): Span {
    const given = options.root ? undefined : trace.getSpanContext(ctx)
    const parent = given && trace.isSpanContextValid(given) ? given : undefined
    const spanId = this.ids.next()
    const context: SpanContext = parent
      ? {
          traceId: parent.traceId,
          spanId,
          traceFlags: parent.traceFlags & TraceFlags.SAMPLED,
          ...(parent.traceState ? { traceState: parent.traceState } : {}),
        }
      : { traceId: timeOrderedTraceId(), spanId, traceFlags: TraceFlags.SAMPLED }
    if (!(context.traceFlags & TraceFlags.SAMPLED)) return trace.wrapSpanContext(context)
    return new RecordingSpan(
      this.sink,
      context,
      parent?.spanId,
      name,
      options.kind ?? SpanKind.INTERNAL,
      options.attributes,
      options.startTime,
    )
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    const fn = (c ?? (typeof b === 'function' ? b : a)) as F
    const options = typeof a === 'function' ? {} : a
    const ctx = typeof b === 'object' ? b : otelContext.active()
    const span = this.startSpan(name, options, ctx)
    return otelContext.with(trace.setSpan(ctx, span), fn as (s: Span) => ReturnType<F>, undefined, span)
  }
}

/** The W3C `traceparent` (and `tracestate`) that carry a span to the next hop. */
export function traceHeaders(span: Span): Record<string, string> {
  const sc = span.spanContext()
  const out: Record<string, string> = {}
  if (trace.isSpanContextValid(sc))
    setTraceHeaders(out, sc.traceId, sc.spanId, (sc.traceFlags & TraceFlags.SAMPLED) !== 0, sc.traceState)
  return out
}

/** Writes the W3C `traceparent` (and `tracestate`, if any) of a span into `headers`. */
export function setTraceHeaders(
  headers: Record<string, string>,
  traceId: string,
  spanId: string,
  sampled: boolean,
  traceState: TraceState | undefined,
): void {
  headers.traceparent = `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`
  const state = traceState?.serialize()
  if (state) headers.tracestate = state
}
