import type { Logger } from '../log.js'
import type { AuditEvent, AuditStore } from '../store/types.js'

export interface AuditWriterOptions {
  store: AuditStore
  logger: Logger
  /** `batch`: rows are written every `flushMs` off the hot path; `sync`: before the call returns. */
  mode?: 'batch' | 'sync'
  flushMs?: number
  /** Flush early once this many rows are queued. */
  maxBatch?: number
}

/**
 * Writes audit rows. In batch mode the durability window is `flushMs`: rows of calls that
 * finished less than that before a hard crash (SIGKILL, power loss) can be lost. A clean
 * shutdown flushes everything.
 */
export class AuditWriter {
  private readonly store: AuditStore
  private readonly logger: Logger
  private readonly mode: 'batch' | 'sync'
  private readonly maxBatch: number
  private queue: AuditEvent[] = []
  private readonly timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> = Promise.resolve()

  constructor({ store, logger, mode = 'batch', flushMs = 200, maxBatch = 1000 }: AuditWriterOptions) {
    this.store = store
    this.logger = logger
    this.mode = mode
    this.maxBatch = maxBatch
    if (mode === 'batch') {
      this.timer = setInterval(() => void this.flush(), flushMs)
      this.timer.unref()
    }
  }

  async write(event: AuditEvent): Promise<void> {
    if (this.mode === 'sync') return this.store.append([event])
    this.queue.push(event)
    if (this.queue.length >= this.maxBatch) void this.flush()
  }

  /** Writes whatever is queued; concurrent calls chain, so rows keep their order. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (!this.queue.length) return
      const batch = this.queue
      this.queue = []
      try {
        await this.store.append(batch)
      } catch (err) {
        this.logger.error({ err, rows: batch.length }, 'audit write failed; rows dropped')
      }
    })
    return this.flushing
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    await this.flush()
  }
}
