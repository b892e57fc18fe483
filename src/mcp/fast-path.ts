import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ProtocolError, type EventStore, type JSONRPCMessage } from '@modelcontextprotocol/server'
import type { CallContext } from '../context.js'
import type { ToolCall } from '../pipeline/types.js'
import { endSoon } from '../http/write-batch.js'
import type { Registry } from '../registry.js'
import { Slots } from '../slots.js'
import { Cancellation } from '../upstream/cancel.js'
import type { CallHooks, JsonObject } from '../upstream/rpc.js'
import {
  dispatchToolCall,
  canUrlElicit,
  envelopeCanElicit,
  envelopeCaps,
  GATEWAY_INFO,
  missingTool,
  ownerOf,
  type Scope,
} from './handlers.js'
import type { Parking } from './parking.js'

const MODERN = '2026-07-28'
const LEGACY_VERSIONS = new Set(['2025-11-25', '2025-06-18', '2025-03-26'])
const SERVER_INFO_KEY = 'io.modelcontextprotocol/serverInfo'

/** What the fast path needs of a 2025-era session kept by the ingress. */
export interface FastSession {
  id: string
  scope: Scope
  owner: string
  /** The client declared elicitation, sampling or roots: its calls may need a request relayed. */
  relaysRequests: boolean
  /** The level the client set with logging/setLevel; messages below it are not relayed. */
  logLevel: string | undefined
  /** Where the session's SSE events go (in memory, or the shared store on replicas). */
  events: EventStore
  /** The session was used now (idle expiry starts again). */
  touch(): void
}

const SEVERITY = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

/** Whether a log message at `level` passes the client's threshold. */
export function passesLogLevel(level: unknown, threshold: string | undefined): boolean {
  if (threshold === undefined) return true
  return SEVERITY.indexOf(String(level)) >= SEVERITY.indexOf(threshold)
}

export interface FastPathOptions {
  registry: Registry
  callTool(call: ToolCall): Promise<JsonObject>
  /** Pauses calls whose 2025-era upstream asks a 2026-era client something. */
  parking: Parking
  session(id: string): FastSession | undefined
}

interface InflightCall {
  sid: string
  id: string | number
  ac: Cancellation
}

interface CallRequest {
  id: string | number
  name: string
  args: JsonObject
  params: JsonObject
}

/** A single, well-formed `tools/call` request, or undefined (the SDK path then answers it). */
function asToolCall(body: unknown): CallRequest | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined
  const m = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown }
  if (m.jsonrpc !== '2.0' || m.method !== 'tools/call') return undefined
  if (typeof m.id !== 'string' && typeof m.id !== 'number') return undefined
  const p = m.params as { name?: unknown; arguments?: unknown; task?: unknown } | undefined
  if (!p || typeof p !== 'object' || Array.isArray(p) || typeof p.name !== 'string') return undefined
  // Task-augmented calls take the SDK path, where tasks are handled.
  if (p.task !== undefined) return undefined
  if (
    p.arguments !== undefined &&
    (typeof p.arguments !== 'object' || p.arguments === null || Array.isArray(p.arguments))
  ) {
    return undefined
  }
  return { id: m.id, name: p.name, args: (p.arguments ?? {}) as JsonObject, params: p as JsonObject }
}

const header = (req: IncomingMessage, name: string) => {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/**
 * The hot path for `tools/call`, bypassing the SDK's per-request machinery (Web Request/Response
 * objects, zod validation of every message, a Server per 2026 request) when nothing but a plain
 * answer can come back: 2026 requests without a progress token or log level, and calls in 2025
 * sessions whose client cannot be asked anything (no elicitation, sampling or roots). Upstream
 * notifications during a 2025 call upgrade the reply to SSE lazily. Everything else, including
 * every malformed request, goes to the SDK path, which owns the error answers.
 */
export class FastPath {
  /** 2025-era calls in flight, so `notifications/cancelled` can reach them (not a Map: see Slots). */
  private readonly inflight = new Slots<InflightCall>()

  constructor(private readonly opts: FastPathOptions) {}

  /** A 2025 client cancelled a request (a separate POST): abort it if it is one of ours. */
  cancel(sid: string, requestId: unknown, reason: unknown): void {
    const id = String(requestId)
    this.inflight.find((c) => c.sid === sid && String(c.id) === id)?.ac.abort(reason ?? 'cancelled')
  }

  /** Answers the request and returns true, or returns false without touching `res`. */
  async tryHandle(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: CallContext,
    scope: Scope,
    body: unknown,
  ): Promise<boolean> {
    const call = asToolCall(body)
    if (!call) return false
    const meta = call.params._meta as JsonObject | undefined
    if (meta?.progressToken !== undefined) return false
    const version = header(req, 'mcp-protocol-version')
    const sid = header(req, 'mcp-session-id')
    if (version === MODERN && sid === undefined) {
      if (header(req, 'mcp-method') !== 'tools/call' || header(req, 'mcp-name') !== call.name) return false
      if (
        meta?.['io.modelcontextprotocol/protocolVersion'] !== MODERN ||
        meta['io.modelcontextprotocol/logLevel'] !== undefined
      ) {
        return false
      }
      await this.run(res, ctx, scope, call, true, undefined, undefined)
      return true
    }
    if (sid === undefined || (version !== undefined && !LEGACY_VERSIONS.has(version))) return false
    const accept = header(req, 'accept') ?? ''
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return false
    const s = this.opts.session(sid)
    if (
      !s ||
      s.relaysRequests ||
      s.owner !== ownerOf(ctx) ||
      s.scope.tenant !== scope.tenant ||
      s.scope.server !== scope.server
    ) {
      return false
    }
    s.touch()
    await this.run(res, ctx, scope, call, false, sid, s.events, s.logLevel)
    return true
  }

  private async run(
    res: ServerResponse,
    ctx: CallContext,
    scope: Scope,
    call: CallRequest,
    modern: boolean,
    sid: string | undefined,
    events: EventStore | undefined,
    logLevel?: string,
  ): Promise<void> {
    const reply = new LazyReply(res, events, sid, logLevel)
    const ac = new Cancellation()
    // 2026: the request is the call, so a dropped connection cancels it. 2025: a disconnect is not
    // a cancellation (the spec says so; notifications/cancelled is); the answer stays resumable.
    if (modern) {
      res.on('close', () => {
        if (!res.writableFinished) ac.abort()
      })
    }
    const slot = sid ? this.inflight.add({ sid, id: call.id, ac }) : -1
    let message: JsonObject
    try {
      const { registry } = this.opts
      const index =
        registry.toolIndexNow(scope.tenant, scope.server) ??
        (await registry.toolIndex(scope.tenant, scope.server))
      const tool = index.tools.get(call.name)
      const result = tool
        ? await dispatchToolCall(this.opts, {
            ctx,
            tool,
            args: call.args,
            meta: call.params._meta as Record<string, unknown> | undefined,
            modern,
            requestState: call.params.requestState,
            inputResponses: call.params.inputResponses as Record<string, unknown> | undefined,
            hooks: modern ? {} : reply.hooks(),
            signal: ac,
            // Legacy sessions on this path declared no elicitation (else they take the SDK path).
            canElicit: modern && envelopeCanElicit(call.params._meta as Record<string, unknown> | undefined),
            canUrlElicit:
              modern && canUrlElicit(envelopeCaps(call.params._meta as Record<string, unknown> | undefined)),
          })
        : missingTool(this.opts.registry, scope, call.name)
      message = { jsonrpc: '2.0', id: call.id, result: modern ? stampModern(result) : result }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err
      const error: JsonObject = { code: err.code, message: err.message }
      if (err.data !== undefined) error.data = err.data
      message = { jsonrpc: '2.0', id: call.id, error }
    } finally {
      if (slot !== -1) this.inflight.remove(slot)
    }
    await reply.finish(message)
  }
}

/** `_meta` of a result that brought none: built once (a computed key per call is costly). */
const GATEWAY_META: JsonObject = Object.freeze({ [SERVER_INFO_KEY]: GATEWAY_INFO }) as JsonObject

/** 2026 results say they are complete and who answered, as the SDK path stamps them. */
export function stampModern(result: JsonObject): JsonObject {
  const own = result._meta as JsonObject | undefined
  // Object.assign: a spread of a parsed result followed by writes is ~1 µs slower in V8.
  const stamped: JsonObject = Object.assign({}, result)
  stamped.resultType ??= 'complete'
  if (own) {
    const meta: JsonObject = Object.assign({}, own)
    meta[SERVER_INFO_KEY] = GATEWAY_INFO
    stamped._meta = meta
  } else stamped._meta = GATEWAY_META
  return stamped
}

/**
 * A reply that is JSON unless something must be sent before the answer, in which case it becomes
 * an SSE stream (with event ids, so the client can resume it).
 */
class LazyReply {
  private streamId: string | undefined
  /** The JSON answer is queued (it goes out at the end of this event-loop turn). */
  private done = false

  constructor(
    private readonly res: ServerResponse,
    private readonly events: EventStore | undefined,
    private readonly sid: string | undefined,
    private readonly logLevel: string | undefined,
  ) {}

  hooks(): CallHooks {
    return {
      onNotification: (method, params) => {
        if (method === 'notifications/message' && !passesLogLevel(params?.level, this.logLevel)) return
        void this.event({ jsonrpc: '2.0', method, ...(params ? { params } : {}) })
      },
    }
  }

  async finish(message: JsonObject): Promise<void> {
    if (this.streamId) {
      await this.event(message)
      this.res.end()
      return
    }
    const body = JSON.stringify(message)
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    }
    if (this.sid) headers['mcp-session-id'] = this.sid
    this.done = true
    endSoon(this.res.writeHead(200, headers), body)
  }

  private async event(message: JsonObject): Promise<void> {
    if (this.done || this.res.writableEnded) return
    if (!this.streamId) {
      this.streamId = randomUUID()
      const headers: Record<string, string> = {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
      }
      if (this.sid) headers['mcp-session-id'] = this.sid
      this.res.writeHead(200, headers)
    }
    let id: string | undefined
    try {
      id = await this.events?.storeEvent(this.streamId, message as JSONRPCMessage)
    } catch {
      // The event store failed (a database failover): sent without an id, so not resumable,
      // rather than lost, or an unhandled rejection of the notification relay.
    }
    if (this.res.writableEnded) return
    this.res.write(`event: message\n${id ? `id: ${id}\n` : ''}data: ${JSON.stringify(message)}\n\n`)
  }
}
