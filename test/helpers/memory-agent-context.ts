/**
 * An in-memory AgentContext for unit tests of agents: a tiny journal with the engine's replay
 * semantics, without the engine. Journaled operations (step, callTool, setState) are recorded by
 * position; a context built over an existing journal replays those positions (returning the
 * recorded results without running anything) and executes what comes after. A replay that asks
 * for something else at a position than what was recorded fails loudly ("journal divergence").
 *
 * Not modelled: event de-duplication on replay (every emit is collected in `events`), interrupts,
 * step attempts > 1.
 */
import type {
  AgentContext,
  AgentEvent,
  Memory,
  MemoryItem,
  StepInfo,
  ToolInfo,
  ToolResult,
  Usage,
} from '../../src/agents/define.js'

export type JournalEntry =
  | { kind: 'step'; name: string; value: unknown }
  | { kind: 'tool'; tool: string; args: Record<string, unknown>; result?: ToolResult; error?: string }
  | { kind: 'state'; patch: Record<string, unknown> }

export interface MemoryAgentContextOptions {
  runId?: string
  agent?: string
  threadId?: string
  /** Pass the journal of an earlier context to replay it. */
  journal?: JournalEntry[]
  /** The thread state the run starts with (copied). */
  state?: Record<string, unknown>
  /** What listTools() returns. */
  tools?: ToolInfo[]
  /** Runs a tool call; a throw / rejection is the gateway refusing the call. Default: refuses. */
  callTool?: (tool: string, args: Record<string, unknown>) => Promise<ToolResult> | ToolResult
  signal?: AbortSignal
}

const json = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T))

export class MemoryAgentContext implements AgentContext {
  readonly runId: string
  readonly agent: string
  readonly threadId?: string
  readonly signal: AbortSignal
  readonly memory: Memory = new InMemoryMemory()
  readonly journal: JournalEntry[]
  /** Everything emitted, in order. */
  readonly events: AgentEvent[] = []
  /** Everything passed to recordUsage, in order. */
  readonly usage: Usage[] = []
  /** How often each operation really ran (replayed positions do not count). */
  readonly executed = { steps: 0, toolCalls: 0, listTools: 0, setState: 0 }
  private cursor = 0
  private current: Record<string, unknown>
  private readonly tools: ToolInfo[]
  private readonly toolFn: NonNullable<MemoryAgentContextOptions['callTool']>

  constructor(opts: MemoryAgentContextOptions = {}) {
    this.runId = opts.runId ?? 'run_test'
    this.agent = opts.agent ?? 'test-agent'
    if (opts.threadId !== undefined) this.threadId = opts.threadId
    this.signal = opts.signal ?? new AbortController().signal
    this.journal = opts.journal ?? []
    this.current = json(opts.state ?? {})
    this.tools = opts.tools ?? []
    this.toolFn =
      opts.callTool ??
      ((tool) => {
        throw new Error(`no tool ${tool} in this test`)
      })
  }

  get state(): Readonly<Record<string, unknown>> {
    return this.current
  }

  /** True once every journaled position has been consumed (a replay went all the way). */
  get replayed(): boolean {
    return this.cursor >= this.journal.length
  }

  async step<T>(name: string, fn: (info: StepInfo) => Promise<T> | T): Promise<T> {
    const pos = this.cursor
    const recorded = this.next('step', name)
    if (recorded) return json(recorded.value as T)
    this.executed.steps++
    const value = json(await fn({ idempotencyKey: `${this.runId}:${pos}`, attempt: 1 }))
    this.journal.push({ kind: 'step', name, value })
    this.cursor++
    return json(value)
  }

  async callTool(tool: string, args: Record<string, unknown>): Promise<ToolResult> {
    const recorded = this.next('tool', tool)
    if (recorded) {
      if (recorded.error !== undefined) throw new Error(recorded.error)
      return json(recorded.result as ToolResult)
    }
    this.executed.toolCalls++
    const entry: JournalEntry = { kind: 'tool', tool, args: json(args) }
    this.journal.push(entry)
    this.cursor++
    try {
      const result = json(await this.toolFn(tool, json(args)))
      entry.result = result
      return json(result)
    } catch (err) {
      entry.error = err instanceof Error ? err.message : String(err)
      throw new Error(entry.error)
    }
  }

  async listTools(): Promise<ToolInfo[]> {
    this.executed.listTools++
    return json(this.tools)
  }

  emit(event: AgentEvent): void {
    this.events.push(json(event))
  }

  async interrupt<T = unknown>(_payload: unknown): Promise<T> {
    throw new Error('interrupt is not supported in this double')
  }

  async setState(patch: Record<string, unknown>): Promise<void> {
    const recorded = this.next('state', '')
    if (!recorded) {
      this.executed.setState++
      this.journal.push({ kind: 'state', patch: json(patch) })
      this.cursor++
    }
    this.current = { ...this.current, ...json(recorded ? recorded.patch : patch) }
  }

  recordUsage(usage: Usage): void {
    this.usage.push({ ...usage })
  }

  /** The recorded entry at the cursor (advancing it), or undefined past the journal's end. */
  private next<K extends JournalEntry['kind']>(
    kind: K,
    name: string,
  ): Extract<JournalEntry, { kind: K }> | undefined {
    const entry = this.journal[this.cursor]
    if (!entry) return undefined
    const entryName = entry.kind === 'step' ? entry.name : entry.kind === 'tool' ? entry.tool : ''
    if (entry.kind !== kind || entryName !== name)
      throw new Error(
        `journal divergence at #${this.cursor}: recorded ${entry.kind} ${entryName}, asked for ${kind} ${name}`,
      )
    this.cursor++
    return entry as Extract<JournalEntry, { kind: K }>
  }
}

class InMemoryMemory implements Memory {
  private readonly items = new Map<string, MemoryItem>()

  async put(
    namespace: string[],
    key: string,
    value: Record<string, unknown>,
    opts?: { ttlSeconds?: number },
  ) {
    const id = JSON.stringify([namespace, key])
    const now = new Date().toISOString()
    const item: MemoryItem = {
      namespace: [...namespace],
      key,
      value: json(value),
      createdAt: this.items.get(id)?.createdAt ?? now,
      updatedAt: now,
    }
    if (opts?.ttlSeconds !== undefined)
      item.expiresAt = new Date(Date.now() + opts.ttlSeconds * 1000).toISOString()
    this.items.set(id, item)
  }

  async get(namespace: string[], key: string) {
    const item = this.items.get(JSON.stringify([namespace, key]))
    return item && !expired(item) ? json(item) : undefined
  }

  async search(
    prefix: string[],
    opts: { filter?: Record<string, unknown>; limit?: number; offset?: number } = {},
  ) {
    const hits = [...this.items.values()].filter(
      (i) =>
        !expired(i) &&
        prefix.every((p, n) => i.namespace[n] === p) &&
        Object.entries(opts.filter ?? {}).every(([k, v]) => JSON.stringify(i.value[k]) === JSON.stringify(v)),
    )
    const offset = opts.offset ?? 0
    return json(hits.slice(offset, offset + (opts.limit ?? 10)))
  }

  async delete(namespace: string[], key: string) {
    return this.items.delete(JSON.stringify([namespace, key]))
  }
}

function expired(item: MemoryItem): boolean {
  return item.expiresAt !== undefined && Date.parse(item.expiresAt) <= Date.now()
}
