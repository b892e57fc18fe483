import { Counter, Histogram, Registry, type RegistryContentType } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { BoundCounter, BoundHistogram } from '../../src/telemetry/bound-metrics.js'
import { Metrics } from '../../src/telemetry/metrics.js'

const BUCKETS = [0.001, 0.01, 0.1, 1]

/** The same observations into prom-client's own metrics and into the bound ones. */
function twin() {
  const theirs = new Registry()
  const ours = new Registry()
  const labelNames = ['connector', 'tool'] as const
  return {
    theirs,
    ours,
    counters: [
      new Counter({ name: 'c_total', help: 'calls', labelNames, registers: [theirs] }),
      new BoundCounter({ name: 'c_total', help: 'calls', labelNames, registers: [ours] }),
    ] as const,
    histograms: [
      new Histogram({
        name: 'h_seconds',
        help: 'latency',
        labelNames,
        buckets: BUCKETS,
        registers: [theirs],
      }),
      new BoundHistogram({
        name: 'h_seconds',
        help: 'latency',
        labelNames,
        buckets: BUCKETS,
        registers: [ours],
      }),
    ] as const,
  }
}

describe('bound-label metrics', () => {
  it('print exactly what prom-client prints for the same observations', async () => {
    const t = twin()
    const samples: [string, string, number][] = [
      ['gh', 'search', 0.0004],
      ['gh', 'search', 0.001], // on a bucket's bound: counts in that bucket (le is inclusive)
      ['gh', 'search', 0.05],
      ['gh', 'search', 7], // above every bucket: only +Inf
      ['slack', 'post "x"\\n', 0.2], // label values are escaped by the registry
    ]
    const ourCounter = new Map<string, ReturnType<BoundCounter<'connector' | 'tool'>['child']>>()
    for (const [connector, tool, v] of samples) {
      t.counters[0].inc({ connector, tool })
      t.histograms[0].observe({ connector, tool }, v)
      const k = `${connector}/${tool}`
      if (!ourCounter.has(k)) ourCounter.set(k, t.counters[1].child(connector, tool))
      ourCounter.get(k)!.inc()
      t.histograms[1].child(connector, tool).observe(v)
    }
    const theirs = await t.theirs.metrics()
    expect(theirs).toContain('h_seconds_bucket{le="0.001",connector="gh",tool="search"} 2')
    expect(await t.ours.metrics()).toBe(theirs)
    // OpenMetrics, as prom-client renders counters there (`_total` kept once).
    for (const r of [t.theirs, t.ours])
      (r as unknown as Registry<RegistryContentType>).setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
    expect(await t.ours.metrics()).toBe(await t.theirs.metrics())
  })

  it('refuses a label set of the wrong size, and reset forgets every child', async () => {
    const reg = new Registry()
    const c = new BoundCounter({ name: 'x_total', help: 'x', labelNames: ['a', 'b'], registers: [reg] })
    expect(() => c.child('only-one')).toThrow(/expected 2 label values \(a, b\), got 1/)
    c.child('1', '2').inc(3)
    expect(await reg.metrics()).toContain('x_total{a="1",b="2"} 3')
    reg.resetMetrics()
    expect(await reg.metrics()).not.toContain('x_total{')
  })

  it("the gateway's tool-call and HTTP metrics land on /metrics' registry", async () => {
    const m = new Metrics()
    m.recordToolCall('gh', 'search', 'ok', 0.002)
    m.recordToolCall('gh', 'search', 'ok', 0.004)
    m.recordToolCall('gh', 'search', 'error', 0.3)
    m.recordHttp('POST /mcp', 200)
    m.recordHttp('POST /mcp', 200)
    const text = await m.registry.metrics()
    expect(text).toContain('gatehouse_tool_calls_total{connector="gh",tool="search",outcome="ok"} 2')
    expect(text).toContain('gatehouse_tool_calls_total{connector="gh",tool="search",outcome="error"} 1')
    expect(text).toContain('gatehouse_tool_call_duration_seconds_count{connector="gh",tool="search"} 3')
    expect(text).toContain(
      'gatehouse_tool_call_duration_seconds_bucket{le="0.005",connector="gh",tool="search"} 2',
    )
    expect(text).toContain('gatehouse_http_requests_total{route="POST /mcp",status="200"} 2')
    expect(text).toContain('# TYPE gatehouse_tool_call_duration_seconds histogram')
  })
})
