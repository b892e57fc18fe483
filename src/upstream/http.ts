import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool, type Dispatcher } from 'undici'
import type { Logger } from '../log.js'
import { Slots } from '../slots.js'
import {
  answerServerRequest,
  UpstreamAuthRejected,
  UpstreamHttpStatus,
  UpstreamRpcError,
  UpstreamTimeout,
  UpstreamUnavailableError,
  type CallHooks,
  type JsonObject,
  type RequestOptions,
  type RpcMessage,
  type RpcTransport,
} from './rpc.js'
import { Aborter, send, type UpstreamReply } from './send.js'
import { SseParser, type SseEvent } from './sse.js'

export type Era = '2025-11-25' | '2026-07-28'
export const MODERN: Era = '2026-07-28'
export const LEGACY: Era = '2025-11-25'

/** A call's aborter, with the request id a `notifications/cancelled` names. */
class CallAborter extends Aborter {
  constructor(readonly id: number) {
    super()
  }
}

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

/** Resumes of one call's response stream in a row that may bring no event before the call fails. */
const MAX_RESUMES = 20
/** The longest `retry:` delay honoured before reconnecting a stream. */
const MAX_RETRY_MS = 60_000
/** The notification stream's backoff while the upstream refuses it: 0.5 s doubling to 30 s. */
const LISTEN_BACKOFF_MS = 500
const LISTEN_BACKOFF_MAX_MS = 30_000
/** How long `close()` waits for each last word to the upstream (cancellations, DELETE, pool drain). */
const CLOSE_GRACE_MS = 2000

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
  private readonly relays = new Slots<CallHooks>()
  /** Every call in flight: `close()` ends them (not a Map: see Slots). */
  private readonly inflight = new Slots<CallAborter>()
  /** The id of the `initialize` request, which is never cancelled by notification. */
  private initializeId = 0
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
    if (method === 'initialize') this.initializeId = id
    const aborter = new CallAborter(id)
    const timer = setTimeout(
      () => this.cancel(aborter, new UpstreamTimeout(ro.timeoutMs), `timed out after ${ro.timeoutMs} ms`),
      ro.timeoutMs,
    )
    const onAbort = () =>
      this.cancel(
        aborter,
        new UpstreamRpcError(-32800, 'request cancelled'),
        String(ro.signal?.reason ?? 'cancelled'),
      )
    // Cancelled before it was sent: the upstream has nothing to hear of.
    if (ro.signal?.aborted) aborter.abort(new UpstreamRpcError(-32800, 'request cancelled'))
    else ro.signal?.addEventListener('abort', onAbort, { once: true })
    const slot = this.inflight.add(aborter)
    const relay = ro.hooks?.onRequest ? this.relays.add(ro.hooks) : -1
    try {
      if (aborter.reason) throw aborter.reason
      return await this.exchange(id, method, body, headers, aborter, ro.hooks, token)
    } catch (err) {
      throw aborter.reason ?? err
    } finally {
      clearTimeout(timer)
      ro.signal?.removeEventListener('abort', onAbort)
      this.inflight.remove(slot)
      if (relay !== -1) this.relays.remove(relay)
    }
  }

  /**
   * Ends a call in flight (caller's cancellation or the call's timeout). A 2025-11-25 upstream is
   * told with `notifications/cancelled`, session or not. A 2026-07-28 upstream is not: on
   * Streamable HTTP, closing the request's response stream is the cancellation, and no
   * notification is expected (spec 2026-07-28, transports/streamable-http, "Cancellation").
   */
  private cancel(aborter: CallAborter, err: Error, reason: string): void {
    if (aborter.reason) return
    aborter.abort(err)
    const note = this.cancellation(aborter, reason)
    if (note) void this.post(note)
  }

  /** The `notifications/cancelled` an ended call owes its upstream: 2025 era, never `initialize`. */
  private cancellation(aborter: CallAborter, reason: string): RpcMessage | undefined {
    if (this.opts.era !== LEGACY || aborter.id === this.initializeId) return undefined
    return { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: aborter.id, reason } }
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
  private openStream(
    signal: AbortSignal,
    filter: JsonObject,
    lastId: string | undefined,
  ): Promise<Dispatcher.ResponseData> {
    if (this.opts.era === LEGACY) {
      const headers = this.streamHeaders(lastId)
      return this.pool.request({ path: this.path, method: 'GET', headers, signal, bodyTimeout: 0 })
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

  /**
   * Ends the connection at once: calls in flight fail with 'connection closed' (a 2025 upstream
   * hears of each by `notifications/cancelled`, then its session is deleted), and the pool is
   * closed without waiting for calls that may run for up to their timeout. `retire` (the session
   * expired): calls in flight are left to finish, and the pool closes once they have.
   */
  async close(retire = false): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.listen?.abort()
    if (retire) {
      await this.pool.close().catch(() => {})
      return
    }
    const gone = new UpstreamUnavailableError('connection closed')
    const told: Promise<void>[] = []
    for (const aborter of [...this.inflight.values()]) {
      if (aborter.reason) continue
      aborter.abort(gone)
      const note = this.cancellation(aborter, 'connection closed')
      if (note) told.push(this.deliver(note, CLOSE_GRACE_MS))
    }
    await Promise.all(told)
    if (this.opts.era === LEGACY && this.sessionId) {
      await this.pool
        .request({
          path: this.path,
          method: 'DELETE',
          headers: this.headersFor('', undefined, undefined),
          headersTimeout: CLOSE_GRACE_MS,
          bodyTimeout: CLOSE_GRACE_MS,
        })
        .then((r) => r.body.dump())
        .catch(() => {})
    }
    // The calls are aborted; only a relayed answer or a notification may still be on its way.
    await Promise.race([this.pool.close(), sleep(CLOSE_GRACE_MS, undefined, { ref: false })]).catch(() => {})
    await this.pool.destroy().catch(() => {})
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
    throw new UpstreamHttpStatus(res.statusCode, text)
  }

  /**
   * Reads a call's SSE response. A 2025-era stream that ends or breaks before the answer is
   * resumed with GET + Last-Event-ID after the server's `retry:` delay, for as long as resumed
   * streams keep bringing events (SSE polling) and the call's deadline allows.
   */
  private async readSse(
    id: number,
    first: Readable,
    hooks: CallHooks | undefined,
    token: string | undefined,
    aborter: Aborter,
  ): Promise<JsonObject> {
    let stream = first
    let lastId: string | undefined
    let retryMs: number | undefined
    let idle = 0
    for (;;) {
      // One parser per stream: an event cut short by its stream's end is dropped, not glued to
      // the replay.
      const parser = new SseParser(this.maxResponseBytes)
      let events = 0
      let broken: Error | undefined
      stream.setEncoding('utf8')
      const chunks = (stream as AsyncIterable<string>)[Symbol.asyncIterator]()
      try {
        for (;;) {
          let step: IteratorResult<string>
          try {
            step = await chunks.next()
          } catch (err) {
            broken = err as Error
            break
          }
          for (const ev of this.parse(parser, step.done ? undefined : step.value, stream)) {
            events++
            if (ev.id !== undefined) lastId = ev.id
            const msg = parseMessage(ev.data)
            if (!msg) continue
            if (msg.id === id && msg.method === undefined) {
              stream.destroy()
              return settle(msg)
            }
            this.dispatch(msg, hooks, token)
          }
          if (step.done) break
        }
      } catch (err) {
        stream.destroy()
        throw err
      }
      if (aborter.reason) throw aborter.reason
      retryMs = parser.retryMs ?? retryMs
      if (events) idle = 0
      // 2026-07-28 streams are not resumable; a 2025 one is, from the last event id it sent.
      if (this.opts.era !== LEGACY || lastId === undefined || idle >= MAX_RESUMES) {
        throw broken
          ? new UpstreamUnavailableError(
              `upstream ${this.opts.url.host} broke the response stream: ${broken.message}`,
              { cause: broken },
            )
          : new UpstreamUnavailableError('upstream closed the response stream before answering')
      }
      idle++
      await aborter.sleep(Math.min(retryMs ?? 0, MAX_RETRY_MS))
      if (aborter.reason) throw aborter.reason
      stream = await this.resume(lastId, aborter)
    }
  }

  /** Headers of a GET for a 2025 session's SSE stream, resumed after `lastId` when given. */
  private streamHeaders(lastId: string | undefined): Record<string, string> {
    const headers = this.headersFor('', undefined, undefined)
    headers.accept = 'text/event-stream'
    if (lastId !== undefined) headers['last-event-id'] = lastId
    return headers
  }

  private async resume(lastId: string, aborter: Aborter): Promise<Readable> {
    const headers = this.streamHeaders(lastId)
    let res: UpstreamReply
    try {
      res = await send(this.pool, { path: this.path, method: 'GET', headers }, this.maxResponseBytes, aborter)
    } catch (err) {
      if (aborter.reason) throw aborter.reason
      throw new UpstreamUnavailableError(
        `cannot resume the response stream of upstream ${this.opts.url.host}: ${(err as Error).message}`,
        { cause: err },
      )
    }
    if (res.statusCode !== 200 || !res.stream) {
      res.stream?.destroy()
      throw new UpstreamUnavailableError(
        `upstream refused to resume the response stream (HTTP ${res.statusCode})`,
      )
    }
    return res.stream
  }

  /** The events a chunk completes; `undefined` for the stream's clean end. */
  private parse(parser: SseParser, chunk: string | undefined, stream: Readable) {
    try {
      return chunk === undefined ? parser.end() : parser.push(chunk)
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
      const target = hooks ?? this.relays.only()
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

  /** Sends a notification or a response; the answer (202) carries nothing we need. Never throws. */
  private async post(msg: RpcMessage): Promise<void> {
    if (!this.closed) await this.deliver(msg, undefined)
  }

  private async deliver(msg: RpcMessage, timeoutMs: number | undefined): Promise<void> {
    try {
      const res = await this.pool.request({
        path: this.path,
        method: 'POST',
        headers: this.headersFor(msg.method && msg.id === undefined ? msg.method : '', undefined, undefined),
        body: JSON.stringify(msg),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      await res.body.dump()
    } catch (err) {
      this.opts.logger.debug({ err }, 'upstream post failed')
    }
  }

  /**
   * Keeps the notification stream open. Only an upstream that does not offer one gives up for
   * good: 405 or 404 (2026-07-28: 404 with -32601 is its "method not found"). Any other refusal
   * (5xx, 429, 401…) or lost stream is retried, 0.5 s doubling to 30 s, or after the server's
   * `retry:` once a stream has delivered; a 2025 GET stream resumes from its last event id.
   */
  private async runListenStream(signal: AbortSignal, filter: JsonObject): Promise<void> {
    let delay = LISTEN_BACKOFF_MS
    let lastId: string | undefined
    let retryMs: number | undefined
    while (!signal.aborted && !this.closed) {
      let events = 0
      try {
        const res = await this.openStream(signal, filter, lastId)
        const type = String(res.headers['content-type'] ?? '')
        if (res.statusCode >= 300 || !type.startsWith('text/event-stream')) {
          await res.body.dump()
          if (res.statusCode === 405 || res.statusCode === 404) return
        } else {
          const parser = new SseParser(this.maxResponseBytes)
          try {
            for await (const ev of sseEvents(res.body, parser)) {
              events++
              if (ev.id !== undefined) lastId = ev.id
              const msg = parseMessage(ev.data)
              if (msg) this.dispatch(msg, undefined, undefined)
            }
          } finally {
            retryMs = parser.retryMs ?? retryMs
          }
        }
      } catch (err) {
        if (signal.aborted) return
        this.opts.logger.debug({ err }, 'upstream notification stream lost')
      }
      if (events) delay = LISTEN_BACKOFF_MS
      const wait = events ? (retryMs ?? delay) : Math.max(delay, retryMs ?? 0)
      if (!events) delay = Math.min(delay * 2, LISTEN_BACKOFF_MAX_MS)
      await sleep(Math.min(wait, MAX_RETRY_MS), undefined, { signal, ref: false }).catch(() => {})
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

/** A notification stream's events, to its end. undici's body yields Buffers, whatever its encoding. */
async function* sseEvents(body: AsyncIterable<Buffer>, parser: SseParser): AsyncGenerator<SseEvent> {
  const text = new StringDecoder('utf8')
  for await (const chunk of body) yield* parser.push(text.write(chunk))
  yield* parser.push(text.end())
  yield* parser.end()
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
