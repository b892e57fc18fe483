import type { CallContext } from '../context.js'
import { uuidV7 } from '../ids.js'
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
  /** Replaces PII and secrets in the string fields of a row before it is stored (src/policy/redact.ts). */
  redact?: (s: string) => string
  /**
   * The same redaction for values that never repeat (request ids), when `redact` is memoized:
   * each would take a memo slot that is never hit, and keep it alive long enough to be promoted to
   * the old generation of the heap. Defaults to `redact`.
   */
  redactOnce?: (s: string) => string
}

/**
 * The id of a new audit row: a time-ordered UUID (v7), so the rows' unique index grows at its end
 * instead of at a random place per insert (src/ids.ts).
 */
export const auditId = (): string => uuidV7()

/** What a batched write returns: the row is queued (no promise per call). */
const QUEUED: Promise<void> = Promise.resolve()

/** Fields that never hold caller data: ids the gateway made, times, hashes, enums. */
const OPAQUE: ReadonlySet<string> = new Set([
  'id',
  'tenant',
  'at',
  'principalKind',
  'outcome',
  'argsHash',
  'traceId',
])

/** A copy of the row with every other string field passed through `redact`. */
export function redactAudit(
  e: AuditEvent,
  redact: (s: string) => string,
  redactOnce: (s: string) => string = redact,
): AuditEvent {
  let out: AuditEvent | undefined
  for (const k in e) {
    const v = e[k as keyof AuditEvent]
    if (typeof v !== 'string' || OPAQUE.has(k)) continue
    const r = k === 'requestId' ? redactOnce(v) : redact(v)
    if (r !== v) (out ??= { ...e })[k as 'target'] = r
  }
  return out ?? e
}

/**
 * Writes audit rows. In batch mode the durability window is `flushMs`: rows of calls that
 * finished less than that before a hard crash (SIGKILL, power loss) can be lost. A clean
 * shutdown flushes everything.
 */
export class AuditWriter {
  private readonly store: AuditStore
  private readonly batch: Batcher<AuditEvent> | undefined
  private readonly scrub: ((e: AuditEvent) => AuditEvent) | undefined

  constructor({
    store,
    logger,
    mode = 'batch',
    flushMs = 200,
    maxBatch = 1000,
    redact,
    redactOnce,
  }: AuditWriterOptions) {
    this.store = store
    const scrub = redact && ((e: AuditEvent) => redactAudit(e, redact, redactOnce))
    this.scrub = scrub
    if (mode === 'batch') {
      // Redaction runs on the batch, off the call's path.
      this.batch = new Batcher({
        write: (events) => store.append(scrub ? events.map(scrub) : events),
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
      id: auditId(),
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

  write(event: AuditEvent): Promise<void> {
    if (!this.batch) return this.store.append([this.scrub ? this.scrub(event) : event])
    this.batch.push(event)
    return QUEUED
  }

  /** Writes whatever is queued. */
  flush(): Promise<void> {
    return this.batch?.flush() ?? Promise.resolve()
  }

  async close(): Promise<void> {
    await this.batch?.close()
  }
}
