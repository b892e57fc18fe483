import { ProtocolError, ProtocolErrorCode, Server, type ServerContext } from '@modelcontextprotocol/server'
import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ToolCall } from '../pipeline/types.js'
import type { ExposedTool } from '../registry.js'
import type { CancelSignal } from '../upstream/cancel.js'
import type { Registry } from '../registry.js'
import type { Upstream } from '../upstream/connection.js'
import { UpstreamRpcError, type CallHooks, type JsonObject } from '../upstream/rpc.js'
import { isParkState, type Parking } from './parking.js'
import { ResourceRouter } from './resources.js'

export const GATEWAY_INFO = { name: 'gatehouse', version: '0.1.0' }

/** Where one MCP endpoint looks: a tenant, and optionally one virtual server. */
export interface Scope {
  tenant: string
  server?: string
}

export interface HandlerDeps {
  registry: Registry
  logger: Logger
  /** The composed tool-call pipeline. */
  callTool(call: ToolCall): Promise<JsonObject>
  /** Pauses 2025-upstream calls whose pushed requests a 2026 client must answer. */
  parking: Parking
  /** MCP tasks over durable runs (2025-11-25 sessions); absent: no tasks capability. */
  tasks?: TaskHandlers
  /** Resource subscriptions of a 2025 session, for resources/updated fan-out. */
  subscriptions?: { add(uri: string): void; remove(uri: string): void }
  /** Policy's listing filter: the tools this caller is shown (a tool policy denies is not listed). */
  visibleTools?(ctx: CallContext, tools: ExposedTool[]): ExposedTool[]
}

/** tasks/get, tasks/result, tasks/cancel, tasks/list; failures carry a JSON-RPC `code`. */
export interface TaskHandlers {
  get(ctx: CallContext, taskId: unknown): Promise<JsonObject>
  cancel(ctx: CallContext, taskId: unknown): Promise<JsonObject>
  list(ctx: CallContext, cursor: unknown): Promise<JsonObject>
  result(
    ctx: CallContext,
    taskId: unknown,
    ask: ((method: string, params: JsonObject) => Promise<unknown>) | undefined,
    signal: AbortSignal,
  ): Promise<JsonObject>
}

/** Who may continue a session or a paused call: the same principal in the same tenant. */
export const ownerOf = (ctx: CallContext) => `${ctx.tenant}/${ctx.principal.kind}/${ctx.principal.id}`

/** The CallContext our HTTP layer authenticated, carried through the SDK as authInfo.extra. */
export function callContextOf(ctx: ServerContext): CallContext {
  const c = (ctx.http?.authInfo?.extra as { callContext?: CallContext } | undefined)?.callContext
  if (!c)
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      'request reached MCP handlers without authentication',
    )
  return c
}

/** Keys of `_meta` the gateway owns (progress) or that describe the downstream hop only. */
const RESERVED_META = /^(progressToken$|io\.modelcontextprotocol\/)/

function relayMeta(meta: Record<string, unknown> | undefined): JsonObject | undefined {
  if (!meta) return undefined
  let out: JsonObject | undefined
  for (const k in meta) if (!RESERVED_META.test(k)) (out ??= {})[k] = meta[k] as JsonObject[string]
  return out
}

/** A 2026 client cannot be pushed a request; relaying a 2025 upstream's push to one is not built yet. */
export function refuseModernRelay(method: string): never {
  throw new UpstreamRpcError(
    -32601,
    `relaying ${method} from a 2025-era upstream to a 2026-era client is not supported yet`,
  )
}

/** Upstream progress, logs and server→client requests, relayed to this caller. */
function relayHooks(ctx: ServerContext, modern: boolean): CallHooks {
  const token = ctx.mcpReq._meta?.progressToken
  return {
    ...(token !== undefined
      ? {
          onProgress: (p: JsonObject) =>
            void ctx.mcpReq
              .notify({ method: 'notifications/progress', params: { ...p, progressToken: token } })
              .catch(() => {}),
        }
      : {}),
    onNotification: (method, params) => {
      // Log messages go through the SDK's log(), which honours the client's level (setLevel or envelope).
      const sent =
        method === 'notifications/message' && params
          ? ctx.mcpReq.log(params.level as never, params.data, params.logger as string | undefined)
          : ctx.mcpReq.notify({ method, ...(params ? { params } : {}) } as never)
      void sent.catch(() => {})
    },
    onRequest: async (method, params) => {
      if (modern) refuseModernRelay(method)
      return ctx.mcpReq.send({ method, ...(params ? { params } : {}) } as never, {
        signal: ctx.mcpReq.signal,
      })
    },
  }
}

function toolError(text: string): JsonObject {
  return { content: [{ type: 'text', text }], isError: true }
}

/** Maps a failure to what an MCP client should see: protocol errors stay errors, faults become tool errors. */
/** The answer for a name the tool index does not hold: a down connector's tool, or unknown. */
export function missingTool(registry: Registry, scope: Scope, exposed: string): JsonObject {
  const down = registry.unavailableFor(scope.tenant, scope.server, exposed)
  if (down) return toolError(`connector ${down.name} is unavailable: ${down.lastError ?? down.status}`)
  throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${exposed}`)
}

/** MCP 2025-11-25 URLElicitationRequiredError: the client opens the URL, then retries the call. */
const URL_ELICITATION_REQUIRED = -32042

function callFailure(err: unknown, exposed: string, canUrlElicit: boolean): JsonObject {
  if (err instanceof ProtocolError) throw err
  if (err instanceof UpstreamRpcError) throw new ProtocolError(err.code, err.message, err.data)
  if (err instanceof GatewayError) {
    if (err.code === 'connection_required') {
      // The caller must connect an upstream account: a URL elicitation for clients that declared
      // URL mode, otherwise a tool error whose text carries the link (models relay it to users).
      const d = err.details as { connect_url?: string; elicitation_id?: string } | undefined
      if (!canUrlElicit || !d?.connect_url) return toolError(err.message)
      throw new ProtocolError(URL_ELICITATION_REQUIRED, 'This request requires connecting an account.', {
        elicitations: [
          { mode: 'url', elicitationId: d.elicitation_id, url: d.connect_url, message: err.message },
        ],
      })
    }
    if (err.code === 'not_found')
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${exposed}`)
    if (err.code === 'internal') throw new ProtocolError(ProtocolErrorCode.InternalError, 'internal error')
    // Budgets and rate limits: a JSON-RPC error whose data names the limit and when to retry.
    if (err.code === 'rate_limited') throw new ProtocolError(err.jsonRpcCode, err.message, err.details)
    return toolError(err.message)
  }
  throw new ProtocolError(ProtocolErrorCode.InternalError, 'internal error')
}

/** One tools/call as both ingress paths (SDK handler and fast path) see it. */
export interface ToolCallRequest {
  ctx: CallContext
  tool: ExposedTool
  args: JsonObject
  /** The call's `_meta`, before the gateway's own keys are stripped. */
  meta: Record<string, unknown> | undefined
  /** The caller speaks 2026-07-28 (pushed requests must become input_required rounds). */
  modern: boolean
  requestState: unknown
  inputResponses: Record<string, unknown> | undefined
  /** How progress, logs and pushed requests reach this caller. */
  hooks: CallHooks
  signal: CancelSignal | undefined
  /** The caller declared form elicitation (its session's capabilities, or the 2026 request envelope). */
  canElicit: boolean
  /** The caller declared URL-mode elicitation (connect links become -32042 errors instead of tool errors). */
  canUrlElicit?: boolean
  /** The `task` param of a task-augmented call (2025-11-25). */
  task?: JsonObject
}

/** A 2026 request declares its client's capabilities in `_meta`. */
export function envelopeCaps(
  meta: Record<string, unknown> | undefined,
): { elicitation?: unknown } | undefined {
  return meta?.['io.modelcontextprotocol/clientCapabilities'] as { elicitation?: unknown } | undefined
}

export function envelopeCanElicit(meta: Record<string, unknown> | undefined): boolean {
  return Boolean(envelopeCaps(meta)?.elicitation)
}

/** Whether declared elicitation capabilities include URL mode (`elicitation: { url: {} }`). */
export function canUrlElicit(caps: { elicitation?: unknown } | undefined): boolean {
  const e = caps?.elicitation
  return typeof e === 'object' && e !== null && (e as { url?: unknown }).url !== undefined
}

/**
 * Runs a call through the pipeline: relayed as it is, or (2026 caller) parked on the upstream's
 * pushed requests, or resumed from a round the gateway started. Failures become what an MCP
 * client should see (callFailure).
 */
export async function dispatchToolCall(
  deps: Pick<HandlerDeps, 'callTool' | 'parking'>,
  r: ToolCallRequest,
): Promise<JsonObject> {
  const exposed = r.tool.exposed
  const extra: JsonObject = {}
  const meta = relayMeta(r.meta)
  if (meta) extra._meta = meta
  const run = (relay: CallHooks, signal: CancelSignal | undefined) =>
    deps.callTool({
      ctx: r.ctx,
      tool: r.tool,
      args: r.args,
      extra,
      relay,
      ...(signal ? { signal } : {}),
      canElicit: r.canElicit,
      ...(r.task ? { task: r.task } : {}),
      headers: {},
    })
  const state = r.requestState
  try {
    if (!r.modern || (state !== undefined && !isParkState(state))) {
      // A 2026 upstream's own input_required round: relay its state and answers as they are.
      if (r.inputResponses !== undefined) extra.inputResponses = r.inputResponses
      if (state !== undefined) extra.requestState = state
      return await run(r.hooks, r.signal)
    }
    const owner = ownerOf(r.ctx)
    if (isParkState(state))
      return await deps.parking.resume(state, owner, exposed, r.inputResponses, r.signal)
    return await deps.parking.start(
      owner,
      exposed,
      (onRequest, signal) => {
        const hooks: CallHooks = Object.assign({}, r.hooks)
        hooks.onRequest = onRequest
        return run(hooks, signal)
      },
      r.signal,
    )
  } catch (err) {
    return callFailure(err, exposed, r.canUrlElicit === true)
  }
}

/**
 * One low-level SDK Server for a scope, with the gateway's handlers. Built once per 2025 session,
 * and per request (cheap: a few µs) for the stateless 2026 era.
 */
export function buildServer(deps: HandlerDeps, scope: Scope): Server {
  const server = new Server(GATEWAY_INFO, {
    capabilities: {
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      logging: {},
      completions: {},
      ...(deps.tasks ? { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } } : {}),
    },
    instructions: `Gatehouse gateway${scope.server ? ` (server ${scope.server})` : ''}: tools are named {connector}__{tool}.`,
  })
  const { registry } = deps
  const resources = new ResourceRouter(registry, scope)

  server.setRequestHandler('tools/list', async (_req, ctx) => {
    const idx = await registry.toolIndex(scope.tenant, scope.server)
    let tools = [...idx.tools.values()]
    if (deps.visibleTools) tools = deps.visibleTools(callContextOf(ctx), tools)
    return { tools: tools.map((t) => t.def) as never }
  })

  server.setRequestHandler('tools/call', async (req, ctx) => {
    const exposed = req.params.name
    const tool = (await registry.toolIndex(scope.tenant, scope.server)).tools.get(exposed)
    if (!tool) return missingTool(registry, scope, exposed) as never
    const modern = ctx.mcpReq.envelope !== undefined
    const task = (req.params as { task?: JsonObject }).task
    if (task !== undefined && (!tool.invoke || !deps.tasks))
      throw new ProtocolError(
        ProtocolErrorCode.MethodNotFound,
        `tool ${exposed} does not support task-augmented calls`,
      )
    return (await dispatchToolCall(deps, {
      ctx: callContextOf(ctx),
      tool,
      args: (req.params.arguments ?? {}) as JsonObject,
      meta: req.params._meta as Record<string, unknown> | undefined,
      modern,
      requestState: ctx.mcpReq.requestState(),
      inputResponses: ctx.mcpReq.inputResponses,
      hooks: relayHooks(ctx, modern),
      signal: ctx.mcpReq.signal,
      canElicit: modern
        ? envelopeCanElicit(req.params._meta as Record<string, unknown> | undefined)
        : Boolean(server.getClientCapabilities()?.elicitation),
      canUrlElicit: canUrlElicit(
        modern
          ? envelopeCaps(req.params._meta as Record<string, unknown> | undefined)
          : (server.getClientCapabilities() as { elicitation?: unknown } | undefined),
      ),
      ...(task !== undefined && !modern ? { task } : {}),
    })) as never
  })
  if (deps.tasks) registerTaskHandlers(server, deps.tasks)

  server.setRequestHandler('resources/list', async () => ({ resources: (await resources.list()) as never }))
  server.setRequestHandler('resources/templates/list', async () => ({
    resourceTemplates: (await resources.templates()) as never,
  }))
  server.setRequestHandler('resources/read', async (req, ctx) =>
    forward(await resources.route(req.params.uri), 'resources/read', req.params, ctx),
  )
  for (const method of ['resources/subscribe', 'resources/unsubscribe'] as const) {
    server.setRequestHandler(method, async (req, ctx) => {
      const conn = await resources.route(req.params.uri)
      // Upstreams without subscriptions still get updates relayed when they announce them.
      if ((conn.capabilities?.resources as JsonObject | undefined)?.subscribe)
        await forward(conn, method, req.params, ctx)
      if (method === 'resources/subscribe') deps.subscriptions?.add(req.params.uri)
      else deps.subscriptions?.remove(req.params.uri)
      return {}
    })
  }

  server.setRequestHandler('prompts/list', async () => {
    const { prompts } = await registry.prompts(scope.tenant, scope.server)
    return { prompts: [...prompts.values()].map((p) => p.def) as never }
  })
  server.setRequestHandler('prompts/get', async (req, ctx) => {
    const p = (await registry.prompts(scope.tenant, scope.server)).prompts.get(req.params.name)
    if (!p) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown prompt: ${req.params.name}`)
    return forward(p.connection, 'prompts/get', { ...req.params, name: p.name }, ctx)
  })

  server.setRequestHandler('completion/complete', async (req, ctx) => {
    const ref = req.params.ref as { type: string; name?: string; uri?: string }
    if (ref.type === 'ref/prompt') {
      const p = (await registry.prompts(scope.tenant, scope.server)).prompts.get(String(ref.name))
      if (!p) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown prompt: ${ref.name}`)
      return forward(
        p.connection,
        'completion/complete',
        { ...req.params, ref: { ...ref, name: p.name } },
        ctx,
      )
    }
    return forward(await resources.route(String(ref.uri)), 'completion/complete', req.params, ctx)
  })

  return server
}

/** tasks/* for 2025-11-25 sessions (the 2026 revision moved tasks into an extension; not served yet). */
function registerTaskHandlers(server: Server, tasks: TaskHandlers): void {
  const guard = async (fn: () => Promise<JsonObject>): Promise<never> => {
    try {
      return (await fn()) as never
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code === 'number') throw new ProtocolError(code, (err as Error).message)
      if (err instanceof GatewayError && err.code !== 'internal')
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, err.message)
      throw new ProtocolError(ProtocolErrorCode.InternalError, 'internal error')
    }
  }
  const params = (req: unknown) => ((req as { params?: JsonObject }).params ?? {}) as JsonObject
  const reads: [string, (ctx: CallContext, p: JsonObject) => Promise<JsonObject>][] = [
    ['tasks/get', (ctx, p) => tasks.get(ctx, p.taskId)],
    ['tasks/cancel', (ctx, p) => tasks.cancel(ctx, p.taskId)],
    ['tasks/list', (ctx, p) => tasks.list(ctx, p.cursor)],
  ]
  for (const [method, fn] of reads)
    server.setRequestHandler(
      method as never,
      (async (req: unknown, ctx: ServerContext) => guard(() => fn(callContextOf(ctx), params(req)))) as never,
    )
  server.setRequestHandler(
    'tasks/result' as never,
    (async (req: unknown, ctx: ServerContext) =>
      guard(() =>
        tasks.result(
          callContextOf(ctx),
          params(req).taskId,
          server.getClientCapabilities()?.elicitation
            ? (method, p) => ctx.mcpReq.send({ method, params: p } as never, { signal: ctx.mcpReq.signal })
            : undefined,
          ctx.mcpReq.signal,
        ),
      )) as never,
  )
}

/** Relays a request to one upstream as-is, mapping its errors to protocol errors. */
async function forward(conn: Upstream, method: string, params: unknown, ctx: ServerContext): Promise<never> {
  try {
    return (await conn.request(method, params as JsonObject, {
      hooks: relayHooks(ctx, ctx.mcpReq.envelope !== undefined),
      signal: ctx.mcpReq.signal,
    })) as never
  } catch (err) {
    if (err instanceof UpstreamRpcError) throw new ProtocolError(err.code, err.message, err.data)
    throw new ProtocolError(
      ProtocolErrorCode.InternalError,
      `connector ${conn.name} is unavailable: ${(err as Error).message}`,
    )
  }
}
