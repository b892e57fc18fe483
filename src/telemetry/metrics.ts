import { Registry, collectDefaultMetrics, Gauge } from 'prom-client'
import { BoundCounter, BoundHistogram, type CounterChild, type HistogramChild } from './bound-metrics.js'

/** Prometheus metrics of one gateway instance, on its own registry (no global state). */
export class Metrics {
  readonly registry = new Registry()
  readonly toolCalls: BoundCounter<'connector' | 'tool' | 'outcome'>
  readonly toolLatency: BoundHistogram<'connector' | 'tool'>
  readonly httpRequests: BoundCounter<'route' | 'status'>
  readonly upstreamUp: Gauge<'connector' | 'tenant'>

  /** Label-bound children, cached by their label values. */
  private readonly callChildren = new Map<string, CounterChild>()
  private readonly latencyChildren = new Map<string, HistogramChild>()
  private readonly httpChildren = new Map<string, Map<number, CounterChild>>()

  /** Counts one answered HTTP request by its route pattern (a bounded set) and status. */
  recordHttp(route: string, status: number): void {
    let byStatus = this.httpChildren.get(route)
    if (!byStatus) this.httpChildren.set(route, (byStatus = new Map()))
    let c = byStatus.get(status)
    if (!c) byStatus.set(status, (c = this.httpRequests.child(route, String(status))))
    c.inc()
  }

  /** Counts one tool call and its latency. */
  recordToolCall(connector: string, tool: string, outcome: string, seconds: number): void {
    const k = `${connector}\u0000${tool}`
    let c = this.callChildren.get(`${k}\u0000${outcome}`)
    if (!c)
      this.callChildren.set(`${k}\u0000${outcome}`, (c = this.toolCalls.child(connector, tool, outcome)))
    c.inc()
    let h = this.latencyChildren.get(k)
    if (!h) this.latencyChildren.set(k, (h = this.toolLatency.child(connector, tool)))
    h.observe(seconds)
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' })
    this.toolCalls = new BoundCounter({
      name: 'gatehouse_tool_calls_total',
      help: 'Tool calls through the pipeline, by connector, tool and outcome',
      labelNames: ['connector', 'tool', 'outcome'],
      registers: [this.registry],
    })
    this.toolLatency = new BoundHistogram({
      name: 'gatehouse_tool_call_duration_seconds',
      help: 'Tool call latency through the pipeline',
      labelNames: ['connector', 'tool'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    })
    this.httpRequests = new BoundCounter({
      name: 'gatehouse_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers: [this.registry],
    })
    this.upstreamUp = new Gauge({
      name: 'gatehouse_upstream_up',
      help: '1 when the upstream connector is connected',
      labelNames: ['connector', 'tenant'],
      registers: [this.registry],
    })
  }
}
