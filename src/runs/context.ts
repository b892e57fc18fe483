import type {
  AgentContext,
  AgentEvent,
  Memory,
  StepInfo,
  ToolInfo,
  ToolResult,
  Usage,
} from '../agents/define.js'
import type { CallContext } from '../context.js'
import type { MemoryStore } from '../store/types.js'
import { GatewayError } from '../errors.js'
import { ApprovalPendingError } from '../policy/pending.js'
import {
  LeaseLostError,
  type ClaimedRun,
  type JournalEntry,
  type JournalKind,
  type RunStore,
} from '../store/runs.js'

/** The `_meta` key that carries a step's idempotency key to upstream MCP servers. */
export const IDEMPOTENCY_META_KEY = 'io.gatehouse/idempotency-key'

/** Event types the engine writes itself; agents may not emit them. */
export const SYSTEM_EVENT_TYPES: ReadonlySet<string> = new Set(['status', 'interrupt', 'end'])

/** The agent asked for something other than what its journal recorded at this position. */
export class NonDeterminismError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NonDeterminismError'
  }
}

/** Unwinds the agent function after `ctx.interrupt`; the run waits for resume. */
export class InterruptSignal extends Error {
  constructor() {
    super('run interrupted; it continues after POST /v1/runs/{id}/resume')
    this.name = 'InterruptSignal'
  }
}

/** Unwinds the agent function at a step boundary while the process drains. */
export class DrainSignal extends Error {
  constructor() {
    super('the gateway is draining; the run continues on the next claim')
    this.name = 'DrainSignal'
  }
}

/** What the engine gives each run context. */
export interface RunHost {
  readonly owner: string
  readonly store: RunStore
  callTool(
    ctx: CallContext,
    tool: string,
    args: Record<string, unknown>,
    meta: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<ToolResult>
  listTools(ctx: CallContext): Promise<ToolInfo[]>
  memory(ctx: CallContext): Memory
  /** Model usage of a run, for budgets (policy). */
  usage?(ctx: CallContext, usage: Usage): Promise<void>
  /** Before a new step runs: throws while the caller's spend budget (tokens, cost) is used up. */
  admitStep?(ctx: CallContext): Promise<void>
  /** New events were written for this run. */
  published(runId: string): void
  draining(): boolean
}

interface RecordedError {
  code?: string
  name?: string
  message: string
}

/** JSON round trip, so the first execution sees exactly what a replay will. */
function normalize<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T)
}

function toRecorded(err: unknown): RecordedError {
  if (err instanceof GatewayError) return { code: err.code, message: err.message }
  if (err instanceof Error) return { name: err.name, message: err.message }
  return { message: String(err) }
}

function fromRecorded(r: RecordedError): Error {
  if (r.code) return new GatewayError(r.code as never, r.message)
  const e = new Error(r.message)
  if (r.name) e.name = r.name
  return e
}

/**
 * AgentContext for one execution of a run. Every journaled operation takes the next position;
 * on replay the recorded entry at that position must be the same kind and name, and its result is
 * returned without running anything. An entry left `started` by a crash runs again (attempt + 1).
 */
export class RunContext implements AgentContext {
  readonly runId: string
  readonly agent: string
  readonly threadId?: string
  readonly memory: Memory
  /** Set once the run was interrupted: anything the agent does afterwards unwinds again. */
  suspended = false
  private pos = 0
  private emitIndex = 0
  private readonly recorded: Map<number, JournalEntry>
  private currentState: Record<string, unknown>
  /** Ordered background writes (events, usage): `flush` awaits them. */
  private tail: Promise<void> = Promise.resolve()
  private tailError: unknown

  constructor(
    private readonly host: RunHost,
    private readonly run: ClaimedRun,
    journal: readonly JournalEntry[],
    /** The agent principal acting for the run's caller. */
    readonly callContext: CallContext,
    readonly signal: AbortSignal,
  ) {
    this.runId = run.id
    this.agent = run.agent
    if (run.threadId) this.threadId = run.threadId
    this.recorded = new Map(journal.map((e) => [e.pos, e]))
    this.currentState = { ...run.stateBefore }
    this.memory = host.memory(callContext)
  }

  get state(): Readonly<Record<string, unknown>> {
    return this.currentState
  }

  /** Claims the next journal position, checking it against the journal when replaying. */
  private next(kind: JournalKind, name: string): { pos: number; entry?: JournalEntry } {
    if (this.suspended) throw new InterruptSignal()
    if (this.signal.aborted)
      throw this.signal.reason instanceof Error ? this.signal.reason : new DrainSignal()
    if (this.host.draining()) throw new DrainSignal()
    const pos = this.pos++
    const entry = this.recorded.get(pos)
    if (entry && (entry.kind !== kind || entry.name !== name)) {
      throw new NonDeterminismError(
        `run ${this.runId}: journal position ${pos} recorded ${entry.kind} "${entry.name}" but the agent now asks for ${kind} "${name}"; ` +
          'agent code must make the same journaled calls in the same order on every execution (put non-deterministic work inside ctx.step)',
      )
    }
    return entry ? { pos, entry } : { pos }
  }

  private write(entry: JournalEntry, threadState?: Record<string, unknown>): Promise<void> {
    return this.host.store.writeJournal(this.host.owner, this.runId, entry, threadState)
  }

  /** A failure caused by cancel, drain, a lost lease or a pause is not the step's outcome: it is not journaled. */
  private interrupted(err: unknown): boolean {
    return (
      this.signal.aborted ||
      err instanceof LeaseLostError ||
      err instanceof DrainSignal ||
      err instanceof InterruptSignal
    )
  }

  /** Runs a journaled side effect: replays a recorded outcome, else records started → done | error. */
  private async journaled<T>(
    kind: 'step' | 'tool',
    name: string,
    fn: (info: StepInfo) => Promise<T>,
  ): Promise<T> {
    const { pos, entry } = this.next(kind, name)
    if (entry?.status === 'done') return entry.result as T
    if (entry?.status === 'error') throw fromRecorded(entry.result as RecordedError)
    const attempt = (entry?.attempt ?? 0) + 1
    // Model calls happen in steps: a caller whose spend budget is used up starts no new one.
    if (kind === 'step' && this.host.admitStep) await this.host.admitStep(this.callContext)
    await this.write({ pos, kind, name, status: 'started', attempt })
    const info: StepInfo = { idempotencyKey: `${this.runId}:${pos}`, attempt }
    let result: T
    try {
      result = normalize(await fn(info))
    } catch (err) {
      if (!this.interrupted(err))
        await this.write({ pos, kind, name, status: 'error', result: toRecorded(err), attempt })
      throw err
    }
    await this.write({
      pos,
      kind,
      name,
      status: 'done',
      ...(result !== undefined ? { result } : {}),
      attempt,
    })
    return result
  }

  step<T>(name: string, fn: (info: StepInfo) => Promise<T> | T): Promise<T> {
    if (typeof name !== 'string' || !name) throw new TypeError('ctx.step: name must be a non-empty string')
    return this.journaled('step', name, async (info) => fn(info))
  }

  callTool(tool: string, args: Record<string, unknown>): Promise<ToolResult> {
    if (typeof tool !== 'string' || !tool)
      throw new TypeError('ctx.callTool: tool must be a non-empty string')
    return this.journaled('tool', tool, async (info) => {
      try {
        return await this.host.callTool(
          this.callContext,
          tool,
          args ?? {},
          { [IDEMPOTENCY_META_KEY]: info.idempotencyKey },
          this.signal,
        )
      } catch (err) {
        // Policy wants a human decision: pause durably; the entry stays `started`, so the call is
        // made (once) when the decision resumes the run.
        if (err instanceof ApprovalPendingError) await this.pause(err.payload)
        throw err
      }
    })
  }

  /** Run → interrupted with `payload`; unwinds the agent (InterruptSignal). */
  private async pause(payload: unknown): Promise<never> {
    await this.flush()
    await this.host.store.interrupt(this.host.owner, this.runId, payload)
    this.suspended = true
    this.host.published(this.runId)
    throw new InterruptSignal()
  }

  listTools(): Promise<ToolInfo[]> {
    return this.host.listTools(this.callContext)
  }

  async interrupt<T = unknown>(payload: unknown): Promise<T> {
    const { pos, entry } = this.next('interrupt', 'interrupt')
    if (entry?.status === 'done') return entry.result as T
    await this.flush()
    const recorded = normalize(payload) ?? null
    await this.write({
      pos,
      kind: 'interrupt',
      name: 'interrupt',
      status: 'started',
      result: recorded,
      attempt: 1,
    })
    await this.host.store.interrupt(this.host.owner, this.runId, recorded)
    this.suspended = true
    this.host.published(this.runId)
    throw new InterruptSignal()
  }

  async setState(patch: Record<string, unknown>): Promise<void> {
    if (!patch || typeof patch !== 'object' || Array.isArray(patch))
      throw new TypeError('ctx.setState: patch must be an object')
    const { pos, entry } = this.next('state', 'state')
    if (entry?.status === 'done') {
      this.currentState = { ...this.currentState, ...(entry.result as Record<string, unknown>) }
      return
    }
    const recorded = normalize(patch)
    const nextState = { ...this.currentState, ...recorded }
    await this.write(
      { pos, kind: 'state', name: 'state', status: 'done', result: recorded, attempt: 1 },
      this.threadId ? nextState : undefined,
    )
    this.currentState = nextState
  }

  emit(event: AgentEvent): void {
    if (!event || typeof event !== 'object' || typeof event.type !== 'string' || !event.type)
      throw new TypeError('ctx.emit: an event is an object with a string `type`')
    if (SYSTEM_EVENT_TYPES.has(event.type))
      throw new TypeError(`ctx.emit: event type "${event.type}" is reserved for the run itself`)
    if (this.suspended) return
    const index = ++this.emitIndex
    // Replayed emits were persisted by an earlier execution.
    if (index <= this.run.emitted) return
    const data = normalize(event)
    this.enqueue(async () => {
      await this.host.store.appendEvents(this.host.owner, this.runId, [{ type: event.type, data }], index)
      this.host.published(this.runId)
    })
  }

  recordUsage(usage: Usage): void {
    this.enqueue(() => this.host.store.addUsage(this.host.owner, this.runId, usage))
    // Budgets count model tokens and cost too (a failure there never fails the run).
    if (this.host.usage) void this.host.usage(this.callContext, usage).catch(() => undefined)
  }

  private enqueue(write: () => Promise<void>): void {
    this.tail = this.tail.then(write).catch((err: unknown) => {
      this.tailError ??= err
    })
  }

  /** Waits for queued event and usage writes; rethrows the first failure (e.g. a lost lease). */
  async flush(): Promise<void> {
    await this.tail
    if (this.tailError) throw this.tailError
  }
}

/** `ctx.memory` over the store's memory API, scoped to the run's caller. Not journaled. */
export function memoryFor(store: MemoryStore, ctx: CallContext): Memory {
  return {
    async put(namespace, key, value, opts) {
      await store.put(ctx, {
        namespace,
        key,
        value,
        ...(opts?.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}),
      })
    },
    get: (namespace, key) => store.get(ctx, namespace, key),
    search: (namespacePrefix, opts) => store.search(ctx, { namespacePrefix, ...opts }),
    delete: (namespace, key) => store.delete(ctx, namespace, key),
  }
}
