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

/**
 * What both kinds share: the name, help and label names prom-client prints, registration, and one
 * cell of state per label set, made on first use and kept (label sets are bounded by the caller).
 */
abstract class BoundMetric<L extends string, Cell extends { labels: Labels<L> }> {
  readonly name: string
  readonly help: string
  readonly aggregator = 'sum' as const
  abstract readonly type: 'counter' | 'histogram'
  protected readonly cells = new Map<string, Cell>()
  private readonly labelNames: readonly L[]

  constructor(opts: Metric<L>) {
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames
    for (const r of opts.registers) r.registerMetric(this as never)
  }

  protected abstract newCell(labels: Labels<L>): Cell

  /** The cell for these label values (in `labelNames` order). */
  protected cell(values: readonly string[]): Cell {
    const key = values.join('\u0000')
    let c = this.cells.get(key)
    if (!c) this.cells.set(key, (c = this.newCell(labelsOf(this.labelNames, values))))
    return c
  }

  reset(): void {
    this.cells.clear()
  }
}

/** The handle of one label set of a BoundCounter. */
export interface CounterChild {
  inc(by?: number): void
}

interface CounterCell<L extends string> {
  labels: Labels<L>
  value: number
}

export class BoundCounter<L extends string> extends BoundMetric<L, CounterCell<L>> {
  readonly type = 'counter' as const

  protected newCell(labels: Labels<L>): CounterCell<L> {
    return { labels, value: 0 }
  }

  /** The child for these label values (in `labelNames` order), made on first use. */
  child(...values: string[]): CounterChild {
    const cell = this.cell(values)
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
      values: [...this.cells.values()].map((c) => ({ labels: { ...c.labels }, value: c.value })),
    }
  }
}

/** The handle of one label set of a BoundHistogram. */
export interface HistogramChild {
  observe(value: number): void
}

interface HistogramCell<L extends string> {
  labels: Labels<L>
  /** Observations per bucket (not cumulative; the scrape adds them up). */
  counts: Float64Array
  sum: number
  count: number
}

export class BoundHistogram<L extends string> extends BoundMetric<L, HistogramCell<L>> {
  readonly type = 'histogram' as const
  private readonly buckets: readonly number[]

  constructor(opts: Metric<L> & { buckets: readonly number[] }) {
    super(opts)
    this.buckets = [...opts.buckets].sort((a, b) => a - b)
  }

  protected newCell(labels: Labels<L>): HistogramCell<L> {
    return { labels, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }
  }

  child(...values: string[]): HistogramChild {
    const cell = this.cell(values)
    const buckets = this.buckets
    return {
      observe(value) {
        cell.sum += value
        cell.count++
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
    for (const c of this.cells.values()) {
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += c.counts[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...c.labels }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...c.labels }, value: c.count })
      values.push({ metricName: `${this.name}_sum`, labels: { ...c.labels }, value: c.sum })
      values.push({ metricName: `${this.name}_count`, labels: { ...c.labels }, value: c.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
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
