import type { Logger } from '../log.js'

export interface BatcherOptions<T> {
  /** Writes one batch; a failure is logged and the batch dropped (telemetry must not stall calls). */
  write(items: T[]): Promise<void>
  logger: Logger
  /** What the items are, for the log line. */
  what: string
  flushMs: number
  /** Flush early once this many items are queued (default 1000). */
  maxBatch?: number
  /** An item still being filled elsewhere, taken at each flush and written last (undefined: none). */
  pending?: () => T | undefined
}

/**
 * Queues items off the hot path and writes them in batches every `flushMs` or every `maxBatch`
 * items. Flushes chain, so batches are written in order (a batch filled while one is being
 * written waits its turn, so batches under load may exceed `maxBatch`).
 */
export class Batcher<T> {
  private queue: T[] = []
  private readonly timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()
  private readonly maxBatch: number
  /** A flush is chained and has not taken the queue yet: a full queue need not chain another. */
  private queued = false

  constructor(private readonly opts: BatcherOptions<T>) {
    this.maxBatch = opts.maxBatch ?? 1000
    this.timer = setInterval(() => void this.flush(), opts.flushMs)
    this.timer.unref()
  }

  push(item: T): void {
    this.queue.push(item)
    if (this.queue.length >= this.maxBatch && !this.queued) void this.flush()
  }

  flush(): Promise<void> {
    this.queued = true
    this.flushing = this.flushing.then(async () => {
      this.queued = false
      const last = this.opts.pending?.()
      if (last !== undefined) this.queue.push(last)
      if (!this.queue.length) return
      const batch = this.queue
      this.queue = []
      try {
        await this.opts.write(batch)
      } catch (err) {
        this.opts.logger.error({ err, count: batch.length }, `${this.opts.what} write failed; batch dropped`)
      }
    })
    return this.flushing
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}
