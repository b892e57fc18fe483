import type { Readable } from 'node:stream'
import { Pool, type Dispatcher } from 'undici'
import type { Logger } from '../log.js'
import {
  answerServerRequest,
  UpstreamAuthRejected,
  UpstreamRpcError,
  UpstreamUnavailableError,
  type CallHooks,
  type JsonObject,
  type RequestOptions,
  type RpcMessage,
  type RpcTransport,
} from './rpc.js'
import { Aborter, send, type UpstreamReply } from './send.js'
import { SseParser } from './sse.js'

export type Era = '2025-11-25' | '2026-07-28'
export const MODERN: Era = '2026-07-28'
export const LEGACY: Era = '2025-11-25'

/** The session an upstream issued has expired (404): the client re-initialises and retries once. */
export class SessionExpiredError extends Error {}

export interface HttpTransportOptions {
  url: URL
  era: Era
  /** Static headers for every request (resolved secrets included); never logged. */
  headers: Record<string, string>
  /** Headers read on every request (a brokered user's current token); never logged. */
  dynamicHeaders?: () => Record<string, string>
  logger: Logger
  /** 2026-07-28: the `_meta` envelope sent with every request (protocol version, client info, capabilities). */
  envelope?: JsonObject
  connections?: number
  /** Largest upstream answer accepted (a JSON body, or one SSE event); default 32 MiB. */
  maxResponseBytes?: number
}

/** How many times one call's response stream may be resumed after the server closed it. */
const MAX_RESUMES = 20

const NAME_FIELD: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/cancel': 'taskId',
}

/** Header values outside printable ASCII travel base64-wrapped (SEP-2243 sentinel form). */
function headerValue(v: string): string {
  const plain =
    v.length > 0 &&
    v === v.trim() &&
    /^[\t\x20-\x7e]*$/.test(v) &&
    !(v.startsWith('=?base64?') && v.endsWith('?='))
  return plain ? v : `=?base64?${Buffer.from(v, 'utf8').toString('base64')}?=`
}

/**
 * MCP Streamable HTTP client transport for both protocol eras, on a keep-alive undici pool.
 * Each request is one POST; its JSON or SSE response carries that call's progress, logs and
 * server→client requests, so relays always reach the right caller.
 */
export class HttpTransport implements RpcTransport {
  onNotification?: (method: string, params: JsonObject | undefined) => void
  onClose?: (reason: Error) => void
  sessionId: string | undefined
  protocolVersion: string | undefined
  private readonly pool: Pool
  private readonly path: string
  private nextId = 1
  private closed = false
  private listen: AbortController | undefined
  /** Calls in flight that can relay server→client requests arriving on the GET stream. */
  private readonly relays = new Set<CallHooks>()
  private readonly maxResponseBytes: number

  constructor(private readonly opts: HttpTransportOptions) {
    this.pool = new Pool(opts.url.origin, { connections: opts.connections ?? 128, keepAliveTimeout: 30_000 })
    this.path = opts.url.pathname + opts.url.search
    this.maxResponseBytes = opts.maxResponseBytes ?? 32 * 1024 * 1024
    if (opts.era === MODERN) this.protocolVersion = MODERN
  }

  get era(): Era {
    return this.opts.era
  }

  async request(method: string, params: JsonObject | undefined, ro: RequestOptions): Promise<JsonObject> {
    if (this.closed) throw new UpstreamUnavailableError('connection closed')
    const id = this.nextId++
    let outParams = params
    const token = ro.hooks?.onProgress ? `gh-${id}` : undefined
    if (this.opts.era === MODERN || token) {
      const meta: JsonObject = Object.assign({}, params?._meta as JsonObject | undefined)
      if (this.opts.era === MODERN) Object.assign(meta, this.opts.envelope)
      if (token) meta.progressToken = token
      outParams = Object.assign({}, params)
      outParams._meta = meta
    }
    const headers = this.headersFor(method, params, ro.headers)
    const body = JSON.stringify({ jsonrpc: '2.0', id, method, ...(outParams ? { params: outParams } : {}) })
    const aborter = new Aborter()
    const timer = setTimeout(
      () => aborter.abort(new UpstreamRpcError(-32001, `upstream did not answer within ${ro.timeoutMs} ms`)),
      ro.timeoutMs,
    )
    const onAbort = () => {
      if (this.opts.era === LEGACY && this.sessionId) {
        void this.post({
          jsonrpc: '2.0',
          method: 'notifications/cancelled',
          params: { requestId: id, reason: String(ro.signal?.reason ?? 'cancelled') },
        })
      }
      aborter.abort(new UpstreamRpcError(-32800, 'request cancelled'))
    }
    if (ro.signal?.aborted) onAbort()
    ro.signal?.addEventListener('abort', onAbort, { once: true })
    if (ro.hooks?.onRequest) this.relays.add(ro.hooks)
    try {
      if (aborter.reason) throw aborter.reason
      return await this.exchange(id, method, body, headers, aborter, ro.hooks, token)
    } catch (err) {
      throw aborter.reason ?? err
    } finally {
      clearTimeout(timer)
      ro.signal?.removeEventListener('abort', onAbort)
      if (ro.hooks) this.relays.delete(ro.hooks)
    }
  }

  async notify(method: string, params?: JsonObject): Promise<void> {
    const p =
      this.opts.era === MODERN
        ? { ...params, _meta: { ...((params?._meta as JsonObject) ?? {}), ...this.opts.envelope } }
        : params
    await this.post({ jsonrpc: '2.0', method, ...(p ? { params: p } : {}) })
  }

  /**
   * The stream of notifications not tied to a call (list_changed, resource updates):
   * 2025-11-25 opens the standalone GET stream of its session; 2026-07-28 sends
   * `subscriptions/listen` for the list changes the server announced.
   */
  openListenStream(filter: JsonObject = {}): void {
    if (this.listen || (this.opts.era === LEGACY && !this.sessionId)) return
    if (this.opts.era === MODERN && !Object.keys(filter).length) return
    this.listen = new AbortController()
    void this.runListenStream(this.listen.signal, filter)
  }

  /**
   * The stream is quiet for as long as nothing changes upstream: no body timeout (undici's default
   * would cut it every five minutes, and a notification sent while it is opened again is lost).
   */
  private openStream(signal: AbortSignal, filter: JsonObject): Promise<Dispatcher.ResponseData> {
    if (this.opts.era === LEGACY) {
      return this.pool.request({
        path: this.path,
        method: 'GET',
        headers: { ...this.headersFor('', undefined, undefined), accept: 'text/event-stream' },
        signal,
        bodyTimeout: 0,
      })
    }
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: `listen-${this.nextId++}`,
      method: 'subscriptions/listen',
      params: { notifications: filter, _meta: this.opts.envelope },
    })
    return this.pool.request({
      path: this.path,
      method: 'POST',
      headers: this.headersFor('subscriptions/listen', undefined, undefined),
      body,
      signal,
      bodyTimeout: 0,
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.listen?.abort()
    if (this.opts.era === LEGACY && this.sessionId) {
      await this.pool
        .request({
          path: this.path,
          method: 'DELETE',
          headers: this.headersFor('', undefined, undefined),
          headersTimeout: 2000,
        })
        .then((r) => r.body.dump())
        .catch(() => {})
    }
    await this.pool.close().catch(() => {})
  }

  private headersFor(
    method: string,
    params: JsonObject | undefined,
    extra: Record<string, string> | undefined,
  ): Record<string, string> {
    const h: Record<string, string> = Object.assign(
      {},
      this.opts.headers,
      this.opts.dynamicHeaders?.(),
      extra,
    )
    h['content-type'] = 'application/json'
    h.accept = 'application/json, text/event-stream'
    if (this.protocolVersion) h['mcp-protocol-version'] = this.protocolVersion
    if (this.sessionId) h['mcp-session-id'] = this.sessionId
    if (this.opts.era === MODERN && method) {
      h['mcp-method'] = method
      const field = NAME_FIELD[method]
      const v = field ? params?.[field] : undefined
      if (typeof v === 'string') h['mcp-name'] = headerValue(v)
    }
    return h
  }

  private async exchange(
    id: number,
    method: string,
    body: string,
    headers: Record<string, string>,
    aborter: Aborter,
    hooks: CallHooks | undefined,
    token: string | undefined,
  ): Promise<JsonObject> {
    let res: UpstreamReply
    try {
      res = await send(
        this.pool,
        { path: this.path, method: 'POST', headers, body },
        this.maxResponseBytes,
        aborter,
      )
    } catch (err) {
      if (aborter.reason || err instanceof UpstreamUnavailableError) throw err
      throw new UpstreamUnavailableError(`cannot reach upstream: ${(err as Error).message}`, { cause: err })
    }
    if (method === 'initialize') {
      const sid = res.headers['mcp-session-id']
      if (typeof sid === 'string') this.sessionId = sid
    }
    if (res.statusCode === 404 && this.sessionId && method !== 'initialize') {
      res.stream?.destroy()
      throw new SessionExpiredError('upstream session expired')
    }
    if (res.stream) return this.readSse(id, res.stream, hooks, token, aborter)
    const { text } = res
    const challenge = res.headers['www-authenticate']
    if (res.statusCode === 401 || (res.statusCode === 403 && challenge)) {
      throw new UpstreamAuthRejected(
        res.statusCode,
        Array.isArray(challenge) ? challenge.join(', ') : challenge,
        undefined,
        `upstream answered HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`,
      )
    }
    const msg = parseMessage(text)
    if (msg && (msg.result !== undefined || msg.error)) return settle(msg)
    if (res.statusCode >= 500) throw new UpstreamUnavailableError(`upstream answered HTTP ${res.statusCode}`)
    throw new UpstreamRpcError(
      -32603,
      `upstream answered HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`,
    )
  }

  /**
   * Reads a call's SSE response. A 2025-era server may close the stream before answering
   * (SSE polling); the call then resumes with GET + Last-Event-ID, as often as the server allows.
   */
  private async readSse(
    id: number,
    first: Readable,
    hooks: CallHooks | undefined,
    token: string | undefined,
    aborter: Aborter,
  ): Promise<JsonObject> {
    const parser = new SseParser(this.maxResponseBytes)
    let stream = first
    let lastId: string | undefined
    for (let resumes = 0; ; resumes++) {
      stream.setEncoding('utf8')
      for await (const chunk of stream as AsyncIterable<string>) {
        for (const ev of this.parse(parser, chunk, stream)) {
          if (ev.id !== undefined) lastId = ev.id
          const msg = parseMessage(ev.data)
          if (!msg) continue
          if (msg.id === id && msg.method === undefined) {
            stream.destroy()
            return settle(msg)
          }
          this.dispatch(msg, hooks, token)
        }
      }
      if (this.opts.era !== LEGACY || lastId === undefined || resumes >= MAX_RESUMES || aborter.reason) {
        throw new UpstreamUnavailableError('upstream closed the response stream before answering')
      }
      await new Promise((r) => setTimeout(r, Math.min(parser.retryMs ?? 0, 5000)))
      const headers = this.headersFor('', undefined, undefined)
      headers.accept = 'text/event-stream'
      headers['last-event-id'] = lastId
      const res = await send(
        this.pool,
        { path: this.path, method: 'GET', headers },
        this.maxResponseBytes,
        aborter,
      )
      if (res.statusCode !== 200 || !res.stream) {
        res.stream?.destroy()
        throw new UpstreamUnavailableError(
          `upstream refused to resume the response stream (HTTP ${res.statusCode})`,
        )
      }
      stream = res.stream
    }
  }

  private parse(parser: SseParser, chunk: string, stream: Readable) {
    try {
      return parser.push(chunk)
    } catch (err) {
      stream.destroy()
      throw new UpstreamUnavailableError((err as Error).message)
    }
  }

  /** Notifications and server requests seen on a call's stream (or the GET stream). */
  private dispatch(msg: RpcMessage, hooks: CallHooks | undefined, token: string | undefined): void {
    if (msg.method === undefined) return
    if (msg.id !== undefined && msg.id !== null) {
      // A request on the GET stream names no call: relay it only when exactly one call can take it.
      const target = hooks ?? (this.relays.size === 1 ? [...this.relays][0] : undefined)
      void answerServerRequest(msg, target, undefined).then((reply) => this.post(reply))
      return
    }
    if (
      msg.method === 'notifications/progress' &&
      token !== undefined &&
      String(msg.params?.progressToken) === token
    ) {
      hooks?.onProgress?.(msg.params ?? {})
    } else if (hooks?.onNotification && msg.method === 'notifications/message') {
      hooks.onNotification(msg.method, msg.params)
    } else {
      this.onNotification?.(msg.method, msg.params)
    }
  }

  /** Sends a notification or a response; the answer (202) carries nothing we need. */
  private async post(msg: RpcMessage): Promise<void> {
    if (this.closed) return
    try {
      const res = await this.pool.request({
        path: this.path,
        method: 'POST',
        headers: this.headersFor(msg.method && msg.id === undefined ? msg.method : '', undefined, undefined),
        body: JSON.stringify(msg),
      })
      await res.body.dump()
    } catch (err) {
      this.opts.logger.debug({ err }, 'upstream post failed')
    }
  }

  private async runListenStream(signal: AbortSignal, filter: JsonObject): Promise<void> {
    let delay = 500
    while (!signal.aborted && !this.closed) {
      try {
        const res = await this.openStream(signal, filter)
        if (res.statusCode === 405 || res.statusCode === 404) {
          await res.body.dump()
          return
        }
        if (!String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          await res.body.dump()
          return
        }
        delay = 500
        const parser = new SseParser()
        res.body.setEncoding('utf8')
        for await (const chunk of res.body as AsyncIterable<string>) {
          for (const ev of parser.push(chunk)) {
            const msg = parseMessage(ev.data)
            if (msg) this.dispatch(msg, undefined, undefined)
          }
        }
      } catch {
        if (signal.aborted) return
      }
      await new Promise((r) => setTimeout(r, delay).unref())
      delay = Math.min(delay * 2, 30_000)
    }
  }
}

function parseMessage(text: string): RpcMessage | undefined {
  if (!text) return undefined
  try {
    const v = JSON.parse(text) as unknown
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as RpcMessage) : undefined
  } catch {
    return undefined
  }
}

function settle(msg: RpcMessage): JsonObject {
  if (msg.error) throw new UpstreamRpcError(msg.error.code, msg.error.message, msg.error.data)
  return (msg.result ?? {}) as JsonObject
}

/**
 * The upstream refused the request's credentials: HTTP 401, or 403 with a WWW-Authenticate
 * challenge (insufficient_scope). The token broker refreshes, re-authorizes or steps up from it.
 * Its message quotes the upstream's body (never the request's token).
 */
export { UpstreamAuthRejected as UpstreamAuthChallengeError } from './rpc.js'
