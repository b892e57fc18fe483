import { TraceFlags } from '@opentelemetry/api'
import { GatewayError, toGatewayError } from '../errors.js'
import { sha256Hex } from '../hash.js'
import { timeOrderedTraceId } from '../ids.js'
import type { CallLog } from '../telemetry/call-log.js'
import type { Metrics } from '../telemetry/metrics.js'
import { setTraceHeaders } from '../telemetry/tracer.js'
import type { Telemetry } from '../telemetry/tracing.js'
import {
  UpstreamAuthRejected,
  UpstreamRpcError,
  UpstreamUnavailableError,
  type JsonObject,
  type RequestOptions,
} from '../upstream/rpc.js'
import type { Next, Stage, ToolCall } from './types.js'

/** Canonical JSON (sorted keys) so equal arguments hash equally, whatever their key order. */
export function canonicalJson(v: unknown): string {
  // Arguments usually have their keys in order already: then JSON.stringify is canonical as it is.
  return inOrder(v, 0) ? (JSON.stringify(v) ?? 'null') : sortedJson(v)
}

/** Whether every object in `v` lists its keys in sorted order (then its JSON is canonical). */
function inOrder(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object') return true
  if (depth > 64) return false
  if (Array.isArray(v)) {
    for (const x of v) if (!inOrder(x, depth + 1)) return false
    return true
  }
  let prev: string | undefined
  const o = v as Record<string, unknown>
  for (const k in o) {
    if (prev !== undefined && !(prev < k)) return false
    if (!inOrder(o[k], depth + 1)) return false
    prev = k
  }
  return true
}

function sortedJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(sortedJson).join(',')}]`
  const o = v as Record<string, unknown>
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`)
    .join(',')}}`
}

export function argsHash(args: unknown): string {
  return sha256Hex(canonicalJson(args))
}

/**
 * Trace, metrics and audit around everything after it. The call's span is a child of the
 * caller's traceparent and is propagated upstream; its audit row names tenant, principal, tool,
 * an argument hash (never the arguments), outcome and latency. Both are recorded in the compact
 * call log (src/telemetry/call-log.ts), not as objects.
 */
export function observeStage({
  telemetry,
  metrics,
  calls,
}: {
  telemetry: Telemetry
  metrics: Metrics
  calls: CallLog
}): Stage {
  return async (call, next) => {
    const { ctx, tool } = call
    const t0 = performance.now()
    const { traceparent, tracestate } = ctx.trace
    const parent = traceparent ? telemetry.parentOf(traceparent, tracestate) : undefined
    const traceId = parent ? parent.traceId : timeOrderedTraceId()
    const spanId = telemetry.spanIds.next()
    // As the SDK's parent-based sampler: a caller's unsampled trace stays unsampled (no span row).
    const sampled = parent === undefined || (parent.traceFlags & TraceFlags.SAMPLED) !== 0
    setTraceHeaders(call.headers, traceId, spanId, sampled, parent?.traceState)
    let outcome: 'ok' | 'error' | 'denied' | 'cancelled' = 'ok'
    let errorCode: string | undefined
    let exceptionType: string | undefined
    try {
      const result = await next()
      if (result.isError === true) {
        outcome = 'error'
        errorCode = 'tool_error'
      }
      return result
    } catch (err) {
      const cancelled =
        call.signal?.aborted === true || (err instanceof UpstreamRpcError && err.code === -32800)
      const ge = cancelled ? new GatewayError('cancelled', 'cancelled by the caller') : toGatewayError(err)
      outcome = cancelled ? 'cancelled' : ge.code === 'forbidden' ? 'denied' : 'error'
      errorCode = ge.code
      // The type goes on the span, not the message (it may hold caller data).
      exceptionType = ge.name
      throw err
    } finally {
      const ms = performance.now() - t0
      metrics.recordToolCall(tool.connection.name, tool.name, outcome, ms / 1000)
      calls.record(
        ctx,
        tool,
        traceId,
        spanId,
        parent?.spanId,
        sampled,
        performance.timeOrigin + t0,
        ms,
        outcome,
        errorCode,
        exceptionType,
        argsHash(call.args),
      )
    }
  }
}

/** The connector must belong to the caller's tenant: a second check behind the registry lookup. */
export const scopeStage: Stage = (call, next) => {
  if (call.tool.connection.tenant !== call.ctx.tenant)
    throw new GatewayError('not_found', `unknown tool ${call.tool.exposed}`)
  return next()
}

/**
 * Enforces policy (allow / deny / approve, budgets, redaction) on a call. `enforce` returns
 * undefined when no policy applies to the caller's tenant, so an allow-all tenant costs one
 * lookup and no allocation; otherwise it returns the guarded continuation (src/policy/engine.ts).
 */
export interface PolicyDecider {
  enforce(call: ToolCall, next: Next): Promise<JsonObject> | undefined
}

export const allowAll: PolicyDecider = { enforce: () => undefined }

export function policyStage(policy: PolicyDecider): Stage {
  return (call, next) => policy.enforce(call, next) ?? next()
}

/**
 * Per-caller upstream credentials (token brokering, src/connections/broker.ts). `handles` says
 * whether a tool's connector is brokered; `attach` sets the caller's token on the call (or throws
 * `connection_required` with the connect URL); `recover` decides what an upstream refusal means:
 * a refreshed token to retry with once, or an error for the caller.
 */
export interface CredentialBroker {
  handles(call: ToolCall): boolean
  attach(call: ToolCall): Promise<void>
  /** Returns to retry once with a renewed token; throws when there is nothing more to try (`final`: the retry was refused too). */
  recover(call: ToolCall, err: UpstreamAuthRejected, final: boolean): Promise<void>
}

export const noCredentials: CredentialBroker = {
  handles: () => false,
  attach: async () => {},
  recover: async (_call, err) => {
    throw err
  },
}

export function credentialStage(broker: CredentialBroker): Stage {
  const refused = (call: ToolCall, err: unknown): err is UpstreamAuthRejected =>
    err instanceof UpstreamAuthRejected && call.signal?.aborted !== true
  const brokered: Stage = async (call, next) => {
    await broker.attach(call)
    try {
      return await next()
    } catch (err) {
      if (!refused(call, err)) throw err
      await broker.recover(call, err, false)
    }
    try {
      return await next()
    } catch (err) {
      if (!refused(call, err)) throw err
      await broker.recover(call, err, true)
      throw err
    }
  }
  // Calls to connectors without brokering go straight on (no extra async step on the hot path).
  return (call, next) => (broker.handles(call) ? brokered(call, next) : next())
}

/** The terminal step: the upstream call itself, with upstream faults mapped to gateway errors. */
export async function executeUpstream(call: ToolCall): Promise<JsonObject> {
  const { tool } = call
  if (tool.invoke) return tool.invoke(call)
  try {
    // Trace context also travels in `_meta` (the MCP convention), so stdio upstreams see it too.
    // Copies by Object.assign and then property writes: `{ ...obj, more }` takes a slow path in V8.
    let meta = call.extra._meta as JsonObject | undefined
    const { traceparent, tracestate } = call.headers
    if (traceparent) {
      meta = Object.assign({}, meta)
      meta.traceparent = traceparent
      if (tracestate) meta.tracestate = tracestate
    }
    const params: JsonObject = Object.assign({}, call.extra)
    if (meta) params._meta = meta
    params.name = tool.name
    params.arguments = call.args
    const options: Omit<RequestOptions, 'timeoutMs'> = { headers: call.headers }
    if (call.credential) options.credential = call.credential
    if (call.relay) options.hooks = call.relay
    if (call.signal) options.signal = call.signal
    return await tool.connection.request('tools/call', params, options)
  } catch (err) {
    if (err instanceof UpstreamRpcError) throw err
    if (err instanceof UpstreamUnavailableError) {
      throw new GatewayError(
        'upstream_unavailable',
        `connector ${tool.connection.name} is unavailable: ${err.message}`,
        { cause: err },
      )
    }
    throw err
  }
}
