import { context, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api'
import { describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { GatewayTracer, SpanIds, traceHeaders, type FinishedSpan } from '../../src/telemetry/tracer.js'
import { Telemetry } from '../../src/telemetry/tracing.js'

const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_SPAN = '00f067aa0ba902b7'

function collecting() {
  const done: FinishedSpan[] = []
  return { done, tracer: new GatewayTracer((s) => done.push(s)) }
}

describe('GatewayTracer', () => {
  it('a root span starts a time-led trace, records its attributes, status and duration once', async () => {
    const { done, tracer } = collecting()
    const before = Date.now()
    const span = tracer.startSpan('tools/call crm__find', {
      kind: SpanKind.CLIENT,
      attributes: { 'gatehouse.tenant': 'acme', n: 3, skip: undefined },
    })
    expect(span.isRecording()).toBe(true)
    span.setAttribute('mcp.tool.name', 'find')
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'tool_error' })
    // UNSET never replaces a status; OK is final.
    span.setStatus({ code: SpanStatusCode.UNSET })
    await new Promise((r) => setTimeout(r, 5))
    span.end()
    span.end()
    span.setAttribute('late', 'ignored')
    expect(span.isRecording()).toBe(false)
    expect(done).toHaveLength(1)
    const s = done[0]!
    expect(s.context.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(parseInt(s.context.traceId.slice(0, 12), 16)).toBeGreaterThanOrEqual(before)
    expect(s.context.spanId).toMatch(/^[0-9a-f]{16}$/)
    expect(s.context.traceFlags).toBe(TraceFlags.SAMPLED)
    expect(s.parentSpanId).toBeUndefined()
    expect(s.kind).toBe(SpanKind.CLIENT)
    expect(s.attributes).toEqual({ 'gatehouse.tenant': 'acme', n: 3, 'mcp.tool.name': 'find' })
    expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: 'tool_error' })
    expect(s.durationMs).toBeGreaterThanOrEqual(4)
    expect(s.startMs).toBeGreaterThanOrEqual(before - 1)
    expect(s.startMs).toBeLessThanOrEqual(Date.now())
  })

  it('a child of an extracted traceparent keeps the trace, names its parent and passes tracestate on', () => {
    const { done, tracer } = collecting()
    const telemetry = new Telemetry({
      spans: { append: async () => {}, listTrace: async () => [], recent: async () => [] },
      logger: createLogger('silent'),
    })
    const parent = telemetry.extract(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`, 'vendor=abc,other=1')
    const span = tracer.startSpan('child', {}, parent)
    expect(traceHeaders(span)).toEqual({
      traceparent: `00-${PARENT_TRACE}-${span.spanContext().spanId}-01`,
      tracestate: 'vendor=abc,other=1',
    })
    span.end()
    expect(done[0]!.context.traceId).toBe(PARENT_TRACE)
    expect(done[0]!.parentSpanId).toBe(PARENT_SPAN)
    // `root` ignores the context's span.
    const root = tracer.startSpan('root', { root: true }, parent)
    expect(root.spanContext().traceId).not.toBe(PARENT_TRACE)
    void telemetry.close()
  })

  it('an unsampled parent gives a non-recording span that still propagates, with flags 00', () => {
    const { done, tracer } = collecting()
    const parent = trace.setSpanContext(context.active(), {
      traceId: PARENT_TRACE,
      spanId: PARENT_SPAN,
      traceFlags: TraceFlags.NONE,
    })
    const span = tracer.startSpan('quiet', {}, parent)
    expect(span.isRecording()).toBe(false)
    expect(traceHeaders(span).traceparent).toMatch(new RegExp(`^00-${PARENT_TRACE}-[0-9a-f]{16}-00$`))
    span.end()
    expect(done).toHaveLength(0)
  })

  it('an invalid parent (all-zero ids) starts a new trace', () => {
    const { tracer } = collecting()
    const parent = trace.setSpanContext(context.active(), {
      traceId: '0'.repeat(32),
      spanId: '0'.repeat(16),
      traceFlags: TraceFlags.SAMPLED,
    })
    expect(tracer.startSpan('x', {}, parent).spanContext().traceId).not.toBe('0'.repeat(32))
  })

  it('startActiveSpan hands the new span to the callback, under the given parent, and returns its result', () => {
    const { done, tracer } = collecting()
    const parent = trace.setSpanContext(context.active(), {
      traceId: PARENT_TRACE,
      spanId: PARENT_SPAN,
      traceFlags: TraceFlags.SAMPLED,
    })
    // (Making it the active span needs a global context manager, which the gateway does not install.)
    const out = tracer.startActiveSpan('outer', {}, parent, (span) => {
      expect(span.isRecording()).toBe(true)
      span.end()
      return 42
    })
    expect(out).toBe(42)
    expect(tracer.startActiveSpan('plain', (span) => span.spanContext().spanId)).toMatch(/^[0-9a-f]{16}$/)
    expect(done[0]!.parentSpanId).toBe(PARENT_SPAN)
    expect(done[0]!.context.traceId).toBe(PARENT_TRACE)
  })

  it('span ids are unique, 16 hex digits, across refills of the random pool', () => {
    const ids = new SpanIds()
    const seen = new Set(Array.from({ length: 5000 }, () => ids.next()))
    expect(seen.size).toBe(5000)
    for (const id of seen) expect(id).toMatch(/^[0-9a-f]{16}$/)
  })

  it('Telemetry stores ended spans in the span store with their tenant, kind and parent', async () => {
    const store = openSqliteStore({ path: ':memory:' })
    await store.tenants.ensure(systemContext(), 'default')
    const telemetry = new Telemetry({ spans: store.spans, logger: createLogger('silent'), flushMs: 60_000 })
    const parent = telemetry.extract(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`)
    const span = telemetry.tracer.startSpan(
      'tools/call up__echo',
      { kind: SpanKind.CLIENT, attributes: { 'gatehouse.tenant': 'default', 'mcp.tool.name': 'echo' } },
      parent,
    )
    span.recordException(new TypeError('boom'))
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'internal' })
    span.end()
    await telemetry.flush()
    const [row] = await store.spans.listTrace(systemContext(), PARENT_TRACE)
    expect(row).toMatchObject({
      traceId: PARENT_TRACE,
      spanId: span.spanContext().spanId,
      parentSpanId: PARENT_SPAN,
      tenant: 'default',
      name: 'tools/call up__echo',
      kind: String(SpanKind.CLIENT),
      status: 'error',
      attributes: { 'gatehouse.tenant': 'default', 'mcp.tool.name': 'echo', 'exception.type': 'TypeError' },
    })
    await telemetry.close()
    await store.close()
  })

  it('the span store keeps string, number and boolean attributes and drops arrays', async () => {
    const kept: unknown[] = []
    const telemetry = new Telemetry({
      spans: { append: async (r) => void kept.push(...r), listTrace: async () => [], recent: async () => [] },
      logger: createLogger('silent'),
      flushMs: 60_000,
    })
    const plain = telemetry.tracer.startSpan('plain', { attributes: { a: 'x', n: 1, b: false } })
    plain.end()
    const mixed = telemetry.tracer.startSpan('mixed', { attributes: { a: 'x', list: ['p', 'q'], n: 2 } })
    mixed.end()
    await telemetry.flush()
    expect(kept).toMatchObject([
      { name: 'plain', attributes: { a: 'x', n: 1, b: false } },
      { name: 'mixed', attributes: { a: 'x', n: 2 } },
    ])
    expect((kept[1] as { attributes: object }).attributes).not.toHaveProperty('list')
    await telemetry.close()
  })
})
