import type { CallContext, Principal } from '../context.js'
import type { Logger } from '../log.js'
import type { AuditEvent, CallLogStore, SpanRecord, ToolCallBatch } from '../store/types.js'
import { callSpanRecord } from '../store/rows/telemetry.js'
import { Batcher } from './batch.js'

/**
 * The audit row and the span of every tool call, recorded in a compact binary form.
 *
 * A tool call used to leave two object graphs behind (a span with its attribute map, an audit
 * event) that lived in the heap until their batch was written, 200–500 ms later: long enough to
 * be copied by every young-generation collection in between and often promoted to the old
 * generation, and then copied once more into the message to the telemetry writer thread. Here a
 * call writes ~200 bytes into a shared chunk instead: three numbers, indexes into the batch's
 * string table (tenant, principal, tool, names: interned once per batch) and its own ids.
 * The chunk is handed over whole (to the SQLite writer thread it is transferred, not copied);
 * the rows are built from it by `decodeCalls`, in that thread for SQLite.
 *
 * Layout of one call (little-endian):
 *
 * | offset | bytes | field                                                                          |
 * | -----: | ----: | ------------------------------------------------------------------------------ |
 * |      0 |     8 | f64 span start, Unix ms (the tracer's clock, sub-millisecond)                  |
 * |      8 |     8 | f64 duration, ms                                                               |
 * |     16 |     8 | f64 wall-clock time at the end, Unix ms (the audit row's `at`)                 |
 * |     24 |     1 | outcome: 0 ok, 1 error, 2 denied, 3 cancelled                                                  |
 * |     25 |     1 | flags: 1 sampled (its row holds a span), 2 parent span, 4 error code, 8 exception type, 16 request id |
 * |     26 |  2×5 | string table indexes: tenant, principal, principal kind, target, span name     |
 * |     36 |    32 | trace id (hex)                                                                 |
 * |     68 |    16 | span id (hex)                                                                  |
 * |     84 |    64 | arguments hash (hex)                                                           |
 * |    148 |       | then, by flag: parent span id (16), error code (2), exception type (2), request id (u16 length + UTF-8) |
 */
const FIXED = 148
/** The optional fields other than the request id. */
const OPTIONAL = 16 + 2 + 2 + 2
/** Longest request id kept (in UTF-16 units): ids the HTTP layer accepts are ≤ 128. */
const MAX_REQUEST_ID = 1024
const OUTCOME_CODE: Readonly<Record<AuditEvent['outcome'], number>> = {
  ok: 0,
  error: 1,
  denied: 2,
  cancelled: 3,
}
const F_SAMPLED = 1
const F_PARENT = 2
const F_ERROR = 4
const F_EXCEPTION = 8
const F_REQUEST = 16

/** What the call log needs of a tool: its connector, its upstream name and the name callers see. */
export interface LoggedTool {
  readonly exposed: string
  readonly name: string
  readonly connection: { readonly name: string }
}

export interface CallLogOptions {
  store: CallLogStore
  logger: Logger
  /** How often a partly filled chunk is written (the durability window, as for audit rows). */
  flushMs?: number
  /** Write every call at once instead of in batches (`auditMode: sync`). */
  sync?: boolean
  /** Bytes per chunk (default 256 KiB, ~1,300 calls); a full chunk is written at once. */
  chunkBytes?: number
  /** Replaces PII and secrets in stored strings (memoized: principals and names repeat). */
  redact?: (s: string) => string
  /** The same redaction for strings that never repeat (request ids). Defaults to `redact`. */
  redactOnce?: (s: string) => string
}

/** String table indexes of a tool, valid for one batch. */
interface ToolStrings {
  batch: number
  target: number
  spanName: number
}

const same = (s: string) => s

/** Records finished tool calls and writes them in batches (see the layout above). */
export class CallLog {
  private readonly store: CallLogStore
  private readonly batcher: Batcher<ToolCallBatch>
  private readonly chunkBytes: number
  private readonly sync: boolean
  private readonly redact: (s: string) => string
  private readonly redactOnce: (s: string) => string
  private bytes: ArrayBuffer | undefined
  private buf: Buffer = Buffer.alloc(0)
  private at = 0
  private count = 0
  private strings: string[] = []
  private readonly index = new Map<string, number>()
  /** Counts batches, so that cached string indexes of an earlier batch are not reused. */
  private batch = 0
  private readonly tools = new WeakMap<LoggedTool, ToolStrings>()
  private readonly principals = new WeakMap<Principal, { batch: number; id: number }>()

  constructor({
    store,
    logger,
    flushMs = 200,
    sync = false,
    chunkBytes,
    redact,
    redactOnce,
  }: CallLogOptions) {
    this.store = store
    this.sync = sync
    this.chunkBytes = chunkBytes ?? (sync ? 4096 : 256 * 1024)
    this.redact = redact ?? same
    this.redactOnce = redactOnce ?? this.redact
    this.batcher = new Batcher({
      // Each batch on its own: one that fails is logged and dropped, the others are still written.
      write: async (batches) => {
        for (const b of batches) {
          try {
            await this.store.append(b)
          } catch (err) {
            logger.error({ err, count: b.count }, 'tool call telemetry write failed; batch dropped')
          }
        }
      },
      logger,
      what: 'tool call telemetry',
      flushMs,
      maxBatch: 1,
      pending: () => this.seal(),
    })
  }

  /**
   * One finished call. `parentSpanId` is the caller's span (from its traceparent); `sampled`
   * false (the caller's trace flags say so) keeps the audit row and stores no span in it.
   */
  record(
    ctx: CallContext,
    tool: LoggedTool,
    traceId: string,
    spanId: string,
    parentSpanId: string | undefined,
    sampled: boolean,
    startMs: number,
    durationMs: number,
    outcome: AuditEvent['outcome'],
    errorCode: string | undefined,
    exceptionType: string | undefined,
    argsHash: string,
  ): void {
    let rid: string | undefined = ctx.requestId
    if (rid !== undefined)
      rid = this.redactOnce(rid.length > MAX_REQUEST_ID ? rid.slice(0, MAX_REQUEST_ID) : rid)
    const need = FIXED + OPTIONAL + (rid === undefined ? 0 : rid.length * 3)
    if (this.bytes && this.at + need > this.chunkBytes) this.batcher.push(this.seal()!)
    if (!this.bytes) this.open(Math.max(this.chunkBytes, need))
    const b = this.buf
    const o = this.at
    b.writeDoubleLE(startMs, o)
    b.writeDoubleLE(durationMs, o + 8)
    b.writeDoubleLE(Date.now(), o + 16)
    b[o + 24] = OUTCOME_CODE[outcome]
    const t = this.toolStrings(tool)
    this.u16(o + 26, this.intern(ctx.tenant))
    this.u16(o + 28, this.principal(ctx.principal))
    this.u16(o + 30, this.intern(ctx.principal.kind))
    this.u16(o + 32, t.target)
    this.u16(o + 34, t.spanName)
    b.write(traceId, o + 36, 32, 'latin1')
    b.write(spanId, o + 68, 16, 'latin1')
    b.write(argsHash, o + 84, 64, 'latin1')
    let flags = sampled ? F_SAMPLED : 0
    let p = o + FIXED
    if (parentSpanId !== undefined) {
      flags |= F_PARENT
      b.write(parentSpanId, p, 16, 'latin1')
      p += 16
    }
    if (errorCode !== undefined) {
      flags |= F_ERROR
      this.u16(p, this.intern(this.redact(errorCode)))
      p += 2
    }
    if (exceptionType !== undefined) {
      flags |= F_EXCEPTION
      this.u16(p, this.intern(this.redact(exceptionType)))
      p += 2
    }
    if (rid !== undefined) {
      flags |= F_REQUEST
      const n = b.write(rid, p + 2, 'utf8')
      this.u16(p, n)
      p += 2 + n
    }
    b[o + 25] = flags
    this.at = p
    this.count++
    if (this.sync) this.batcher.push(this.seal()!)
  }

  /** Writes whatever is recorded. */
  flush(): Promise<void> {
    return this.batcher.flush()
  }

  async close(): Promise<void> {
    await this.batcher.close()
  }

  private open(size: number): void {
    this.bytes = new ArrayBuffer(size)
    this.buf = Buffer.from(this.bytes)
    this.at = 0
    this.count = 0
  }

  /** The chunk being filled, as a batch (undefined when it holds no call); the next call opens a new one. */
  private seal(): ToolCallBatch | undefined {
    if (!this.bytes || this.count === 0) return undefined
    const batch: ToolCallBatch = {
      bytes: this.bytes,
      length: this.at,
      count: this.count,
      strings: this.strings,
    }
    this.bytes = undefined
    this.buf = Buffer.alloc(0)
    this.strings = []
    this.index.clear()
    this.batch++
    return batch
  }

  private u16(o: number, v: number): void {
    this.buf[o] = v & 0xff
    this.buf[o + 1] = v >>> 8
  }

  private intern(s: string): number {
    let i = this.index.get(s)
    if (i === undefined) {
      i = this.strings.length
      // A batch is written before its table outgrows the 16-bit indexes.
      if (i === 0xffff) throw new Error('call log: string table full')
      this.strings.push(s)
      this.index.set(s, i)
    }
    return i
  }

  private toolStrings(tool: LoggedTool): ToolStrings {
    let t = this.tools.get(tool)
    if (t === undefined || t.batch !== this.batch) {
      const r = this.redact
      t = {
        batch: this.batch,
        target: this.intern(r(`${tool.connection.name}/${tool.name}`)),
        spanName: this.intern(r(`tools/call ${tool.exposed}`)),
      }
      this.tools.set(tool, t)
    }
    return t
  }

  private principal(p: Principal): number {
    let e = this.principals.get(p)
    if (e === undefined || e.batch !== this.batch) {
      e = { batch: this.batch, id: this.intern(this.redact(p.id)) }
      this.principals.set(p, e)
    }
    return e.id
  }
}

/**
 * The span of a sampled tool call, as stored in its audit row: the rest of the span (tenant,
 * trace id, duration, status, attributes) is read back from the row (src/store/rows/telemetry.ts).
 */
export interface CallSpan {
  spanId: string
  parentSpanId?: string
  /** Span start, Unix ms (sub-millisecond). */
  startMs: number
  name: string
  /** The error's type, for the span's `exception.type` attribute. */
  exceptionType?: string
}

/**
 * The audit rows of a batch, in call order: `emit` gets each call's audit row and its span
 * (undefined when the call was not sampled), which the stores keep in the same row; `newId` makes
 * the audit row's id from its time.
 *
 * Self-contained (no imports, no module state): the SQLite writer thread runs its source text
 * (src/store/sqlite/writer.ts), so the rows are decoded where they are written.
 */
export function decodeCalls(
  batch: ToolCallBatch,
  newId: (ms: number) => string,
  emit: (audit: AuditEvent, span: CallSpan | undefined) => void,
): void {
  const outcomes = ['ok', 'error', 'denied', 'cancelled'] as const
  const b = Buffer.from(batch.bytes, 0, batch.length)
  const s = batch.strings
  const u16 = (o: number): number => b[o]! | (b[o + 1]! << 8)
  const str = (o: number): string => s[u16(o)]!
  // Calls that end in the same millisecond share its ISO time.
  let isoMs = -1
  let iso = ''
  let o = 0
  while (o < batch.length) {
    const startMs = b.readDoubleLE(o)
    const durationMs = b.readDoubleLE(o + 8)
    const at = b.readDoubleLE(o + 16)
    const flags = b[o + 25]!
    let p = o + 148
    let parentSpanId: string | undefined
    if (flags & 2) {
      parentSpanId = b.toString('latin1', p, p + 16)
      p += 16
    }
    let errorCode: string | undefined
    if (flags & 4) {
      errorCode = str(p)
      p += 2
    }
    let exceptionType: string | undefined
    if (flags & 8) {
      exceptionType = str(p)
      p += 2
    }
    let requestId: string | undefined
    if (flags & 16) {
      const n = b[p]! | (b[p + 1]! << 8)
      requestId = b.toString('utf8', p + 2, p + 2 + n)
      p += 2 + n
    }
    const audit: AuditEvent = {
      id: newId(Math.floor(at)),
      tenant: str(o + 26),
      at: at === isoMs ? iso : (iso = new Date((isoMs = at)).toISOString()),
      principal: str(o + 28),
      principalKind: str(o + 30),
      action: 'tool.call',
      target: str(o + 32),
      outcome: outcomes[b[o + 24]!]!,
      argsHash: b.toString('latin1', o + 84, o + 148),
      latencyMs: Math.round(durationMs * 1000) / 1000,
      traceId: b.toString('latin1', o + 36, o + 68),
    }
    if (errorCode !== undefined) audit.errorCode = errorCode
    if (requestId !== undefined) audit.requestId = requestId
    let span: CallSpan | undefined
    if (flags & 1) {
      span = { spanId: b.toString('latin1', o + 68, o + 84), startMs, name: str(o + 34) }
      if (parentSpanId !== undefined) span.parentSpanId = parentSpanId
      if (exceptionType !== undefined) span.exceptionType = exceptionType
    }
    emit(audit, span)
    o = p
  }
}

/** Decodes a batch into its audit rows and spans (for tests, and to see what the stores read back). */
export function decodeCallRows(
  batch: ToolCallBatch,
  newId: (ms: number) => string,
): { audit: AuditEvent[]; spans: SpanRecord[] } {
  const audit: AuditEvent[] = []
  const spans: SpanRecord[] = []
  decodeCalls(batch, newId, (a, s) => {
    audit.push(a)
    if (s) spans.push(callSpanRecord(a, s))
  })
  return { audit, spans }
}
