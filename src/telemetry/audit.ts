import { randomUUID } from 'node:crypto'
import type { CallContext } from '../context.js'
import type { Logger } from '../log.js'
import type { AuditEvent, AuditStore } from '../store/types.js'
import { Batcher } from './batch.js'

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
  private readonly batch: Batcher<AuditEvent> | undefined

  constructor({ store, logger, mode = 'batch', flushMs = 200, maxBatch = 1000 }: AuditWriterOptions) {
    this.store = store
    if (mode === 'batch') {
      this.batch = new Batcher({
        write: (events) => store.append(events),
        logger,
        what: 'audit',
        flushMs,
        maxBatch,
      })
    }
  }

  /** An action of the caller (admin writes, run create/cancel/resume): who, what, on which target. */
  action(
    ctx: CallContext,
    action: string,
    target: string,
    outcome: AuditEvent['outcome'] = 'ok',
  ): Promise<void> {
    return this.write({
      id: randomUUID(),
      tenant: ctx.tenant,
      at: new Date().toISOString(),
      principal: ctx.principal.id,
      principalKind: ctx.principal.kind,
      action,
      target,
      outcome,
      requestId: ctx.requestId,
    })
  }

  async write(event: AuditEvent): Promise<void> {
    if (!this.batch) return this.store.append([event])
    this.batch.push(event)
  }

  /** Writes whatever is queued. */
  flush(): Promise<void> {
    return this.batch?.flush() ?? Promise.resolve()
  }

  async close(): Promise<void> {
    await this.batch?.close()
  }
}
