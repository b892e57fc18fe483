/**
 * Counters and histograms whose label sets are bound once and then updated with plain number
 * arithmetic. prom-client's own `labels(...)` children hash the whole label set again on every
 * `inc()` / `observe()`; on the tool-call path that cost more than the rest of the metrics work.
 * These register in a prom-client Registry like its own metrics (it asks them for their values at
 * scrape time), so `/metrics` prints them in the same exposition format.
 */

type Labels<L extends string> = Record<L, string>

/** What prom-client's Registry reads from a metric at scrape time. */
interface Exposition {
  name: string
  help: string
  type: string
  aggregator: 'sum'
  values: { metricName?: string; labels: Record<string, string | number>; value: number }[]
}

interface Metric<L extends string> {
  name: string
  help: string
  labelNames: readonly L[]
  /** prom-client Registries to appear in. */
  registers: readonly { registerMetric(metric: never): void }[]
}

/** The handle of one label set of a BoundCounter. */
export interface CounterChild {
  inc(by?: number): void
}

export class BoundCounter<L extends string> {
  readonly name: string
  readonly help: string
  readonly type = 'counter' as const
  readonly aggregator = 'sum' as const
  private readonly labelNames: readonly L[]
  private readonly children = new Map<string, { labels: Labels<L>; value: number }>()

  constructor(opts: Metric<L>) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  /** The child for these label values (in `labelNames` order), made on first use. */
  child(...values: string[]): CounterChild {
    const key = values.join('\u0000')
    let c = this.children.get(key)
    if (!c) this.children.set(key, (c = { labels: labelsOf(this.labelNames, values), value: 0 }))
    const cell = c
    return {
      inc(by = 1) {
        cell.value += by
      },
    }
  }

  async get(): Promise<Exposition> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...this.children.values()].map((c) => ({ labels: { ...c.labels }, value: c.value })),
    }
  }

  reset(): void {
    this.children.clear()
  }
}

/** The handle of one label set of a BoundHistogram. */
export interface HistogramChild {
  observe(value: number): void
}

export class BoundHistogram<L extends string> {
  readonly name: string
  readonly help: string
  readonly type = 'histogram' as const
  readonly aggregator = 'sum' as const
  private readonly labelNames: readonly L[]
  private readonly buckets: readonly number[]
  private readonly children = new Map<
    string,
    { labels: Labels<L>; counts: Float64Array; sum: number; count: number }
  >()

  constructor(opts: Metric<L> & { buckets: readonly number[] }) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    this.buckets = [...opts.buckets].sort((a, b) => a - b)
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  child(...values: string[]): HistogramChild {
    const key = values.join('\u0000')
    let c = this.children.get(key)
    if (!c) {
      c = {
        labels: labelsOf(this.labelNames, values),
        counts: new Float64Array(this.buckets.length),
        sum: 0,
        count: 0,
      }
      this.children.set(key, c)
    }
    const cell = c
    const buckets = this.buckets
    return {
      observe(value) {
        cell.sum += value
        cell.count++
        // Counts per bucket (not cumulative); the scrape adds them up.
        for (let i = 0; i < buckets.length; i++) {
          if (value <= buckets[i]!) {
            cell.counts[i]!++
            return
          }
        }
      },
    }
  }

  async get(): Promise<Exposition> {
    const values: Exposition['values'] = []
    for (const c of this.children.values()) {
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += c.counts[i]!
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { le, ...c.labels },
          value: cumulative,
        })
      })
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { le: '+Inf', ...c.labels },
        value: c.count,
      })
      values.push({ metricName: `${this.name}_sum`, labels: { ...c.labels }, value: c.sum })
      values.push({ metricName: `${this.name}_count`, labels: { ...c.labels }, value: c.count })
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    }
  }

  reset(): void {
    this.children.clear()
  }
}

function labelsOf<L extends string>(names: readonly L[], values: readonly string[]): Labels<L> {
  if (values.length !== names.length)
    throw new Error(`expected ${names.length} label values (${names.join(', ')}), got ${values.length}`)
  const labels = {} as Labels<L>
  names.forEach((n, i) => {
    labels[n] = values[i]!
  })
  return labels
}
