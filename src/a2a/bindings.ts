/**
 * The wire bindings of `/a2a/{agent}`, on the gateway's own router (node:http request and
 * response, authentication already done by the server):
 *
 * - JSON-RPC, A2A 1.0 and 0.3, at `POST /a2a/{agent}`: the envelope is checked here (parse error,
 *   invalid request, unknown method, version, roles), then the SDK's JsonRpcTransportHandler (1.0
 *   method names) or LegacyJsonRpcTransportHandler (0.3 method names) dispatches to A2aHandler.
 *   The method name chooses the version, so a 0.3 client that sends no `A2A-Version` and a 1.0
 *   client that does are both served at the same URL.
 * - HTTP+JSON, A2A 1.0, at `/a2a/{agent}/message:send` and the other resource paths. Hand-written:
 *   the SDK's REST binding is an express router (express is not a runtime dependency here) and
 *   its operation class is not exported; the request/response shapes and error bodies come from
 *   the SDK's converters (`fromJSON`/`toJSON`, `toRestErrorBody`).
 * - Server-Sent Events for streams, with keep-alive comments while idle.
 */
import type { TLSSocket } from 'node:tls'
import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api'
import {
  AgentCard,
  ListTaskPushNotificationConfigsResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  Task,
  TaskPushNotificationConfig,
  taskStateFromJSON,
  type ListTasksRequest,
} from '@a2a-js/sdk'
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server'
import {
  ContentTypeNotSupportedError,
  RequestMalformedError,
  restStatusFor,
  toRestErrorBody,
  VersionNotSupportedError,
} from '@a2a-js/sdk/errors'
import { JsonRpcTransportHandler, ServerCallContext } from '@a2a-js/sdk/server'
import { hasRole, inTenant, type CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { RouteRequest } from '../http/router.js'
import { sendJson } from '../http/server.js'
import type { Logger } from '../log.js'
import type { AgentCatalog, LoadedAgent } from '../runs/agents.js'
import { TENANT_ATTR, type Telemetry } from '../telemetry/tracing.js'
import { cardOf, legacyCardOf } from './card.js'
import {
  ANSWER_ROLES,
  callState,
  START_ROLES,
  WRITE_ROLES,
  type A2aCall,
  type A2aHandler,
} from './handler.js'

export type RestOp =
  | 'send'
  | 'stream'
  | 'get'
  | 'list'
  | 'cancel'
  | 'subscribe'
  | 'pushCreate'
  | 'pushGet'
  | 'pushList'
  | 'pushDelete'
  | 'extendedCard'

const V1_METHODS = new Set([
  'SendMessage',
  'SendStreamingMessage',
  'GetTask',
  'ListTasks',
  'CancelTask',
  'SubscribeToTask',
  'CreateTaskPushNotificationConfig',
  'GetTaskPushNotificationConfig',
  'ListTaskPushNotificationConfigs',
  'DeleteTaskPushNotificationConfig',
  'GetExtendedAgentCard',
])
const V03_METHODS = new Set([
  'message/send',
  'message/stream',
  'tasks/get',
  'tasks/cancel',
  'tasks/resubscribe',
  'tasks/pushNotificationConfig/set',
  'tasks/pushNotificationConfig/get',
  'tasks/pushNotificationConfig/list',
  'tasks/pushNotificationConfig/delete',
  'agent/getAuthenticatedExtendedCard',
])
const SEND_METHODS = new Set(['SendMessage', 'SendStreamingMessage', 'message/send', 'message/stream'])
const WRITE_METHODS = new Set([
  'CancelTask',
  'CreateTaskPushNotificationConfig',
  'DeleteTaskPushNotificationConfig',
  'tasks/cancel',
  'tasks/pushNotificationConfig/set',
  'tasks/pushNotificationConfig/delete',
])

const A2A_JSON = 'application/a2a+json'
/** `Major.Minor` (patch ignored, as the spec says). */
const VERSION = /^(\d+)\.(\d+)(?:\.\d+)?$/

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)
const validId = (v: unknown): boolean =>
  v === null || typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))
const mediaType = (ct: string): string => ct.split(';', 1)[0]!.trim().toLowerCase()

function header(r: RouteRequest, name: string): string | undefined {
  const v = r.req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** `1.0` / `0.3` from an A2A-Version value; undefined when it names neither. */
function versionOf(v: string): '1.0' | '0.3' | undefined {
  const m = VERSION.exec(v.trim())
  if (!m) return undefined
  const mm = `${Number(m[1])}.${Number(m[2])}`
  return mm === '1.0' || mm === '0.3' ? mm : undefined
}

export interface A2aBindingsOptions {
  handler: A2aHandler
  catalog: AgentCatalog
  telemetry: Telemetry
  logger: Logger
  /** Comment lines on idle streams this often. */
  heartbeatMs: number
  closing: AbortSignal
  /** The gateway's configured public URL: cards name it instead of the request's host. */
  publicUrl?: string
  /** OIDC issuers whose tokens authenticate (advertised in the cards' security schemes). */
  oidcIssuers?: readonly string[]
}

export class A2aBindings {
  private readonly v1: JsonRpcTransportHandler
  private readonly v03: LegacyJsonRpcTransportHandler

  constructor(private readonly o: A2aBindingsOptions) {
    this.v1 = new JsonRpcTransportHandler(o.handler)
    this.v03 = new LegacyJsonRpcTransportHandler(o.handler)
  }

  /** `http(s)://host[:port]` as the caller addressed the gateway. */
  baseUrl(r: RouteRequest): string {
    if (this.o.publicUrl) return this.o.publicUrl.replace(/\/+$/, '')
    const tls = (r.req.socket as TLSSocket).encrypted === true
    const proto = tls || header(r, 'x-forwarded-proto') === 'https' ? 'https' : 'http'
    return `${proto}://${header(r, 'host') ?? '127.0.0.1'}`
  }

  /** The agent a path names, in the caller's tenant (an operator may pick another with `?tenant=`). */
  agentOf(r: RouteRequest): { ctx: CallContext; agent: LoadedAgent } {
    const name = r.params.agent!
    const tenant = r.url.searchParams.get('tenant')
    let ctx = r.ctx
    if (tenant && tenant !== ctx.tenant) {
      if (!ctx.operator) throw new GatewayError('not_found', `unknown agent ${name}`)
      ctx = inTenant(ctx, tenant)
    }
    const agent = this.o.catalog.get(ctx.tenant, name)
    if (!agent) throw new GatewayError('not_found', `unknown agent ${name}`)
    return { ctx, agent }
  }

  private callFor(r: RouteRequest, ctx: CallContext, agent: LoadedAgent, version: '1.0' | '0.3'): A2aCall {
    const gone = new AbortController()
    r.res.once('close', () => gone.abort())
    return {
      ctx,
      agent,
      baseUrl: this.baseUrl(r),
      ...(this.o.oidcIssuers?.length ? { oidcIssuers: this.o.oidcIssuers } : {}),
      version,
      signal: AbortSignal.any([gone.signal, this.o.closing]),
    }
  }

  private span(ctx: CallContext, agent: string, op: string, binding: string): Span {
    return this.o.telemetry.tracer.startSpan(
      `a2a ${op}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [TENANT_ATTR]: ctx.tenant,
          'gatehouse.principal': ctx.principal.id,
          'gatehouse.agent': agent,
          'a2a.method': op,
          'a2a.binding': binding,
        },
      },
      this.o.telemetry.extract(ctx.trace.traceparent, ctx.trace.tracestate),
    )
  }

  // ---- cards ---------------------------------------------------------------------------------

  private cardOptions(r: RouteRequest): { baseUrl: string; oidcIssuers?: readonly string[] } {
    return {
      baseUrl: this.baseUrl(r),
      ...(this.o.oidcIssuers?.length ? { oidcIssuers: this.o.oidcIssuers } : {}),
    }
  }

  /** The agent card: A2A 1.0 for `A2A-Version: 1.0`, else the 0.3 shape with the 1.0 interfaces embedded. */
  async card(r: RouteRequest): Promise<void> {
    const { agent } = this.agentOf(r)
    const card = await cardOf(agent, this.cardOptions(r))
    const asked = header(r, 'a2a-version')
    const body = asked && versionOf(asked) === '1.0' ? card : await legacyCardOf(card)
    sendJson(r.res, 200, body, {
      'cache-control': 'private, max-age=300',
      vary: 'A2A-Version, Authorization',
    })
  }

  /** Every agent of the caller's tenant, as A2A 1.0 cards. */
  async list(r: RouteRequest): Promise<void> {
    const opts = this.cardOptions(r)
    const agents = this.o.catalog.list(r.ctx.tenant).sort((a, b) => a.name.localeCompare(b.name))
    const cards = await Promise.all(agents.map((a) => cardOf(a, opts)))
    sendJson(r.res, 200, { agents: cards }, { 'cache-control': 'private, max-age=60' })
  }

  // ---- JSON-RPC ------------------------------------------------------------------------------

  async jsonRpc(r: RouteRequest): Promise<void> {
    const { ctx, agent } = this.agentOf(r)
    const res = r.res
    const reply = (id: unknown, code: number, message: string) =>
      sendJson(res, 200, { jsonrpc: '2.0', id: validId(id) ? id : null, error: { code, message } })
    const ct = header(r, 'content-type')
    if (ct && mediaType(ct) !== 'application/json' && mediaType(ct) !== A2A_JSON)
      return reply(null, -32005, `Content-Type ${ct} is not supported; send application/json`)
    const raw = await r.body()
    let body: unknown
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      return reply(null, -32700, 'Parse error: the body is not JSON')
    }
    if (!isObject(body))
      return reply(
        null,
        -32600,
        Array.isArray(body)
          ? 'Invalid Request: batch requests are not supported'
          : 'Invalid Request: the body must be a JSON-RPC request object',
      )
    const id = body.id
    if (body.jsonrpc !== '2.0' || typeof body.method !== 'string' || !body.method || !validId(id ?? null))
      return reply(
        id,
        -32600,
        'Invalid Request: expected {"jsonrpc": "2.0", "id": string | integer | null, "method": string, "params": object}',
      )
    const method = body.method
    const legacy = V03_METHODS.has(method)
    if (!legacy && !V1_METHODS.has(method)) return reply(id, -32601, `Method not found: ${method}`)
    if (body.params !== undefined && !isObject(body.params))
      return reply(id, -32602, 'Invalid params: params must be an object')
    const asked = header(r, 'a2a-version')
    if (asked !== undefined && !versionOf(asked))
      return reply(id, -32009, `A2A-Version ${asked} is not supported; this agent speaks 1.0 and 0.3`)
    const params = (body.params ?? {}) as Record<string, unknown>
    const roles = SEND_METHODS.has(method)
      ? isObject(params.message) && params.message.taskId
        ? ANSWER_ROLES
        : START_ROLES
      : WRITE_METHODS.has(method)
        ? WRITE_ROLES
        : undefined
    if (roles && !ctx.operator && !hasRole(ctx, ...roles))
      throw new GatewayError('forbidden', `${method} needs one of the roles: ${roles.join(', ')}`)

    const call = this.callFor(r, ctx, agent, legacy ? '0.3' : '1.0')
    const sctx = new ServerCallContext({ state: callState(call), requestedVersion: call.version })
    const span = this.span(ctx, agent.name, method, legacy ? 'jsonrpc-0.3' : 'jsonrpc')
    const errorOf = (err: unknown) => ({
      jsonrpc: '2.0',
      id: validId(id) ? id : null,
      error: legacy
        ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err)
        : JsonRpcTransportHandler.mapToJSONRPCError(err),
    })
    let failed = false
    try {
      const out = await (legacy ? this.v03 : this.v1).handle(body, sctx)
      if (out && typeof (out as AsyncGenerator)[Symbol.asyncIterator] === 'function') {
        failed = await this.sse(r, call, out as AsyncGenerator<unknown>, (v) => v, errorOf, 'jsonrpc')
        return
      }
      if (call.escape) throw call.escape
      failed = isObject(out) && 'error' in out
      sendJson(res, 200, out)
    } finally {
      span.setStatus(failed ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.OK })
      span.end()
    }
  }

  // ---- HTTP+JSON -----------------------------------------------------------------------------

  async rest(r: RouteRequest, op: RestOp): Promise<void> {
    const { ctx, agent } = this.agentOf(r)
    const call = this.callFor(r, ctx, agent, '1.0')
    const sctx = new ServerCallContext({ state: callState(call), requestedVersion: '1.0' })
    const h = this.o.handler
    const res = r.res
    const span = this.span(ctx, agent.name, op, 'http+json')
    let failed = false
    try {
      const asked = header(r, 'a2a-version')
      if (asked !== undefined && versionOf(asked) !== '1.0')
        throw new VersionNotSupportedError(
          `A2A-Version ${asked} is not supported on HTTP+JSON; it speaks 1.0 (A2A 0.3 is served over JSON-RPC)`,
        )
      const task = r.params.task ?? ''
      switch (op) {
        case 'send': {
          const result = await h.sendMessage(await this.sendRequest(r), sctx)
          return this.json(
            res,
            200,
            'messageId' in result ? { message: Message.toJSON(result) } : { task: Task.toJSON(result) },
          )
        }
        case 'stream':
          failed = await this.sse(
            r,
            call,
            h.sendMessageStream(await this.sendRequest(r), sctx),
            (v) => StreamResponse.toJSON(v as StreamResponse),
            (err) => toRestErrorBody(err, restStatusFor(err)),
            'rest',
          )
          return
        case 'get': {
          const historyLength = this.intQuery(r, 'historyLength')
          const t = await h.getTask(
            { tenant: '', id: task, ...(historyLength !== undefined ? { historyLength } : {}) },
            sctx,
          )
          return this.json(res, 200, Task.toJSON(t))
        }
        case 'list': {
          const q = r.url.searchParams
          const status = q.get('status')
          const pageSize = this.intQuery(r, 'pageSize')
          const historyLength = this.intQuery(r, 'historyLength')
          const includeArtifacts = q.get('includeArtifacts') === 'true'
          let state = 0
          if (status) {
            state = taskStateFromJSON(/^\d+$/.test(status) ? Number(status) : status)
            if (state <= 0) throw new RequestMalformedError(`status ${status} is not a task state`)
          }
          const req: ListTasksRequest = {
            tenant: '',
            contextId: q.get('contextId') ?? '',
            status: state,
            pageToken: q.get('pageToken') ?? '',
            statusTimestampAfter: q.get('statusTimestampAfter') ?? undefined,
            includeArtifacts,
            ...(pageSize !== undefined ? { pageSize } : {}),
            ...(historyLength !== undefined ? { historyLength } : {}),
          }
          const page = await h.listTasks(req, sctx)
          return this.json(res, 200, {
            tasks: page.tasks.map((t) => {
              const json = Task.toJSON(t) as Record<string, unknown>
              if (!includeArtifacts) delete json.artifacts
              return json
            }),
            nextPageToken: page.nextPageToken,
            pageSize: page.pageSize,
            totalSize: page.totalSize,
          })
        }
        case 'cancel':
          return this.json(
            res,
            200,
            Task.toJSON(await h.cancelTask({ tenant: '', id: task, metadata: undefined }, sctx)),
          )
        case 'subscribe':
          failed = await this.sse(
            r,
            call,
            h.resubscribe({ tenant: '', id: task }, sctx),
            (v) => StreamResponse.toJSON(v as StreamResponse),
            (err) => toRestErrorBody(err, restStatusFor(err)),
            'rest',
          )
          return
        case 'pushCreate': {
          const body = await this.body(r)
          const config = this.parse(() => TaskPushNotificationConfig.fromJSON({ ...body, taskId: task }))
          const out = await h.createTaskPushNotificationConfig(config, sctx)
          return this.json(res, 201, TaskPushNotificationConfig.toJSON(out))
        }
        case 'pushGet': {
          const out = await h.getTaskPushNotificationConfig(
            { tenant: '', taskId: task, id: r.params.config! },
            sctx,
          )
          return this.json(res, 200, TaskPushNotificationConfig.toJSON(out))
        }
        case 'pushList': {
          const out = await h.listTaskPushNotificationConfigs(
            { tenant: '', taskId: task, pageSize: 0, pageToken: '' },
            sctx,
          )
          return this.json(res, 200, ListTaskPushNotificationConfigsResponse.toJSON(out))
        }
        case 'pushDelete':
          await h.deleteTaskPushNotificationConfig({ tenant: '', taskId: task, id: r.params.config! }, sctx)
          res.writeHead(204)
          res.end()
          return
        case 'extendedCard':
          return this.json(
            res,
            200,
            AgentCard.toJSON(await h.getAuthenticatedExtendedAgentCard({ tenant: '' }, sctx)),
          )
      }
    } catch (err) {
      failed = true
      if (call.escape) throw call.escape
      if (err instanceof GatewayError) throw err
      this.restError(res, err)
    } finally {
      span.setStatus(failed ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.OK })
      span.end()
    }
  }

  private json(res: RouteRequest['res'], status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': A2A_JSON })
    res.end(JSON.stringify(body))
  }

  private restError(res: RouteRequest['res'], err: unknown): void {
    const status = restStatusFor(err)
    if (status >= 500 && !(err instanceof Error && err.message === 'internal error'))
      this.o.logger.warn({ err }, 'a2a request failed')
    if (res.headersSent) {
      res.end()
      return
    }
    this.json(res, status, toRestErrorBody(err, status))
  }

  private parse<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw new RequestMalformedError(
        `the request body does not match the A2A schema: ${(err as Error).message}`,
      )
    }
  }

  private intQuery(r: RouteRequest, name: string): number | undefined {
    const v = r.url.searchParams.get(name)
    if (v === null || v === '') return undefined
    if (!/^-?\d+$/.test(v)) throw new RequestMalformedError(`${name} must be an integer`)
    return Number(v)
  }

  /** A JSON object body (empty: `{}`), in application/a2a+json or application/json. */
  private async body(r: RouteRequest): Promise<Record<string, unknown>> {
    const ct = header(r, 'content-type')
    if (ct && mediaType(ct) !== A2A_JSON && mediaType(ct) !== 'application/json')
      throw new ContentTypeNotSupportedError(
        `Content-Type ${ct} is not supported; send application/a2a+json or application/json`,
      )
    const raw = await r.body()
    if (!raw.length) return {}
    let body: unknown
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      throw new RequestMalformedError('the body is not JSON')
    }
    if (!isObject(body)) throw new RequestMalformedError('the body must be a JSON object')
    return body
  }

  private async sendRequest(r: RouteRequest): Promise<SendMessageRequest> {
    const body = await this.body(r)
    if (!isObject(body.message)) throw new RequestMalformedError('message is required')
    return this.parse(() => SendMessageRequest.fromJSON(body))
  }

  // ---- streams -------------------------------------------------------------------------------

  /**
   * Writes a stream as Server-Sent Events (`data: <json>`). An error before the first event is an
   * ordinary error answer (JSON-RPC error object, or the REST error status); after it, an
   * `event: error`. Returns whether it failed.
   */
  private async sse(
    r: RouteRequest,
    call: A2aCall,
    events: AsyncGenerator<unknown>,
    toData: (v: unknown) => unknown,
    errorBody: (err: unknown) => unknown,
    mode: 'jsonrpc' | 'rest',
  ): Promise<boolean> {
    const res = r.res
    let next: IteratorResult<unknown>
    try {
      next = await events.next()
    } catch (err) {
      if (call.escape) throw call.escape
      const body = errorBody(err) as { error?: { code?: number } }
      if (mode === 'jsonrpc') sendJson(res, 200, body)
      else this.json(res, restStatusFor(err), body)
      return true
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    res.flushHeaders()
    const beat = setInterval(() => res.write(': keep-alive\n\n'), this.o.heartbeatMs)
    beat.unref()
    try {
      for (; !next.done; next = await events.next())
        res.write(`data: ${JSON.stringify(toData(next.value))}\n\n`)
      return false
    } catch (err) {
      if (!(err instanceof Error && err.message === 'internal error'))
        this.o.logger.warn({ err }, 'a2a stream failed')
      if (!res.writableEnded) res.write(`event: error\ndata: ${JSON.stringify(errorBody(err))}\n\n`)
      return true
    } finally {
      clearInterval(beat)
      res.end()
    }
  }
}
