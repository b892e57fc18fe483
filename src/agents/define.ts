import type { MemoryRecord } from '../store/types.js'

/**
 * The code-agent contract (SPEC "Code agents"): what an agent module's `run` receives. The run
 * engine (src/runs/) implements AgentContext; `llm` and `a2a` agents are AgentDefinitions built
 * from their manifests, so all three types run through the same engine and journal.
 */

export interface AgentEvent {
  type: string
  [key: string]: unknown
}

/** An MCP CallToolResult as the upstream returned it (content, structuredContent, isError). */
export interface ToolResult {
  content?: unknown[]
  structuredContent?: unknown
  isError?: boolean
  [key: string]: unknown
}

/** A tool the run may call: its exposed name (`{connector}__{tool}`) and MCP definition. */
export interface ToolInfo {
  name: string
  description?: string
  inputSchema: Record<string, unknown>
}

/** Model usage, recorded on the run (and counted by budgets once policy lands). */
export interface Usage {
  model: string
  promptTokens: number
  completionTokens: number
}

/** An item of long-term memory, as the store keeps it. */
export type MemoryItem = MemoryRecord

/** Long-term memory (`/v1/store`), tenant-scoped; namespaces are arrays of labels. */
export interface Memory {
  put(
    namespace: string[],
    key: string,
    value: Record<string, unknown>,
    opts?: { ttlSeconds?: number },
  ): Promise<void>
  get(namespace: string[], key: string): Promise<MemoryItem | undefined>
  search(
    namespacePrefix: string[],
    opts?: { filter?: Record<string, unknown>; limit?: number; offset?: number },
  ): Promise<MemoryItem[]>
  delete(namespace: string[], key: string): Promise<boolean>
}

export interface StepInfo {
  /** `{runId}:{stepKey}`: the same on every retry of this step; pass it to side effects so they can deduplicate. */
  idempotencyKey: string
  /** 1 on the first execution, more when the process died while the step was in flight. */
  attempt: number
}

export interface AgentContext {
  readonly runId: string
  readonly agent: string
  readonly threadId?: string
  /**
   * Calls a tool (`{connector}__{tool}`) through the full pipeline, acting for the run's caller;
   * journaled. Resolves with the tool's result (also when `isError`); rejects when the gateway
   * refuses the call (unknown tool, policy, upstream down).
   */
  callTool(tool: string, args: Record<string, unknown>): Promise<ToolResult>
  /** The tools this run may call. */
  listTools(): Promise<ToolInfo[]>
  /** Runs `fn` once per run; on replay its recorded result is returned. Results must be JSON. */
  step<T>(name: string, fn: (info: StepInfo) => Promise<T> | T): Promise<T>
  /** Streams an event to clients of the run (deduplicated on replay). */
  emit(event: AgentEvent): void
  /** Pauses the run durably until `POST /v1/runs/{id}/resume {value}`; resolves with that value. */
  interrupt<T = unknown>(payload: unknown): Promise<T>
  /** The thread's state as this run sees it (a run without a thread has its own). */
  readonly state: Readonly<Record<string, unknown>>
  /** Shallow-merges `patch` into the thread state; journaled. */
  setState(patch: Record<string, unknown>): Promise<void>
  /** Records model usage on the run. */
  recordUsage(usage: Usage): void
  readonly memory: Memory
  /** Aborted when the run is cancelled or the process drains. */
  readonly signal: AbortSignal
}

export interface AgentDefinition<I = unknown, O = unknown> {
  name: string
  description?: string
  /** JSON Schema of the input (or a zod schema). */
  input?: unknown
  run(input: I, ctx: AgentContext): Promise<O>
}

const AGENT_BRAND = Symbol.for('gatehouse.agent')

/** Marks a module's default export as a Gatehouse agent and checks its shape early. */
export function defineAgent<I = unknown, O = unknown>(def: AgentDefinition<I, O>): AgentDefinition<I, O> {
  if (!def || typeof def !== 'object') throw new TypeError('defineAgent expects an object')
  if (typeof def.name !== 'string' || !def.name)
    throw new TypeError('defineAgent: name must be a non-empty string')
  if (typeof def.run !== 'function') throw new TypeError('defineAgent: run must be a function')
  return Object.defineProperty({ ...def }, AGENT_BRAND, { value: true, enumerable: false })
}

export function isAgentDefinition(v: unknown): v is AgentDefinition {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[AGENT_BRAND] === true
}
