import type { CallContext } from '../context.js'
import type { ExposedTool } from '../registry.js'
import type { CancelSignal } from '../upstream/cancel.js'
import type { CallHooks, CallerCredential, JsonObject } from '../upstream/rpc.js'

/** One tool call on its way through the pipeline; stages may add headers or replace arguments. */
export interface ToolCall {
  readonly ctx: CallContext
  readonly tool: ExposedTool
  /** Arguments as the caller sent them (a loose object: proxied, never re-shaped). */
  args: JsonObject
  /** Extra `tools/call` params relayed as-is (`_meta` minus reserved keys, `inputResponses`, `requestState`). */
  readonly extra: JsonObject
  /** Progress, logs and server→client requests from the upstream, relayed to the caller. */
  readonly relay?: CallHooks
  readonly signal?: CancelSignal
  /** The caller can answer form elicitations (declared the capability). */
  readonly canElicit?: boolean
  /** The `task` param of a task-augmented call (MCP 2025-11-25 tasks); only gateway-run tools accept it. */
  readonly task?: JsonObject
  /** Headers for the upstream request (traceparent from the trace stage, credentials from the broker). */
  readonly headers: Record<string, string>
  /** The caller's own upstream token (brokered connectors), set by the credential stage. */
  credential?: CallerCredential
}

export type Next = () => Promise<JsonObject>

/** A stage sees the call and decides whether and how to continue. Built once; no per-call closures. */
export type Stage = (call: ToolCall, next: Next) => Promise<JsonObject>

/** Chains stages into one function; the last calls `terminal`. */
export function compose(
  stages: readonly Stage[],
  terminal: (call: ToolCall) => Promise<JsonObject>,
): (call: ToolCall) => Promise<JsonObject> {
  return (call) => {
    const step = (i: number): Promise<JsonObject> => {
      const stage = stages[i]
      return stage ? stage(call, () => step(i + 1)) : terminal(call)
    }
    return step(0)
  }
}
