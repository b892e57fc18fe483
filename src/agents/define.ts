/**
 * The code-agent contract (SPEC "Code agents"). The run engine that executes these lands with
 * durable runs; until then an Agent manifest is refused as not supported yet.
 */

export interface AgentEvent {
  type: string
  [key: string]: unknown
}

export interface AgentContext {
  /** Calls a tool through the full pipeline; journaled. */
  callTool(tool: string, args: Record<string, unknown>): Promise<unknown>
  /** Runs `fn` once per run; on replay its recorded result is returned. */
  step<T>(name: string, fn: () => Promise<T> | T): Promise<T>
  /** Streams an event to clients of the run. */
  emit(event: AgentEvent): void
  /** Pauses the run durably until it is resumed with a value. */
  interrupt<T = unknown>(payload: unknown): Promise<T>
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
