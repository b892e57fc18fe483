import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  WebStandardStreamableHTTPServerTransport,
  type EventStore,
  type JSONRPCMessage,
  type McpHttpHandler,
  type Server,
} from '@modelcontextprotocol/server'
import type { CallContext } from '../context.js'
import type { Logger } from '../log.js'
import type { Notifier } from '../runs/notifier.js'
import type { SessionRef, SessionStore } from '../store/sessions.js'
import type { ListKind } from '../upstream/connection.js'
import type { JsonObject } from '../upstream/rpc.js'
import type { MasterKey } from '../vault/master-key.js'
import { MemoryEventStore } from './event-store.js'
import { FastPath, type FastSession } from './fast-path.js'
import { buildServer, ownerOf, type HandlerDeps, type Scope } from './handlers.js'
import { Parking } from './parking.js'
import {
  decodeSignal,
  encodeSignal,
  inboxStream,
  refOf,
  SessionIds,
  SharedSessionEvents,
  SIGNAL_CHANNEL,
  type SessionClaims,
  type SessionSignal,
} from './sessions.js'

export interface McpIngressOptions extends Omit<HandlerDeps, 'subscriptions' | 'parking'> {
  logger: Logger
  maxBodyBytes: number
  /** Idle 2025-era sessions end after this long (across replicas when shared). */
  sessionIdleMs?: number
  /**
   * Sessions kept in this process. Beyond it, idle sessions are closed first, then the least
   * recently used tenth of the principal holding the most (a shared session is rebuilt on its
   * next request): one caller opening sessions in a loop evicts its own, not other tenants'.
   */
  maxSessions?: number
  /** Sessions one principal may hold in this process (default a tenth of maxSessions); its oldest goes first. */
  maxSessionsPerOwner?: number
  /** Seal 2025-era session ids (the first key seals; all open). Replicas must share them. */
  masterKeys: readonly MasterKey[]
  /**
   * Replicas (PostgreSQL): 2025-era sessions are shared through the store — any replica serves any
   * request of a session, rebuilding it from its sealed id; SSE events go to the store, so a
   * stream resumes anywhere. Absent (SQLite, one process): sessions and events stay in memory.
   */
  shared?: SharedSessionsOptions
}

export interface SharedSessionsOptions {
  store: SessionStore
  /** The replicas' notifier (LISTEN/NOTIFY): terminations, event wake-ups, cancellations, routed answers. */
  notifier: Notifier
  /** A replica trusts its last "still live" answer from the store for this long (default 5 s); a DELETE elsewhere is usually seen at once by notification. */
  checkMs?: number
  /** Live SSE tails look at the store at least this often when no notification came (default 1 s). */
  pollMs?: number
}

interface Session {
  id: string
  claims: SessionClaims
  ref: SessionRef
  transport: WebStandardStreamableHTTPServerTransport
  server: Server
  scope: Scope
  /** The principal that opened the session; nobody else may use it. */
  owner: string
  lastSeen: number
  subscriptions: Set<string>
  logLevel?: string
  events: EventStore
  /** What the fast path sees of it, made once the client's capabilities are known. */
  view?: SessionView
  /** Shared sessions: when the store last said the session is live, and when its expiry was last moved on. */
  checkedAt: number
  touchedAt: number
}

/**
 * The fast path's view of a session: one per session, reading the session's live fields (a
 * literal with accessors per request would be built on V8's slow path, docs/architecture.md).
 */
class SessionView implements FastSession {
  constructor(
    private readonly s: Session,
    readonly relaysRequests: boolean,
  ) {}

  get id(): string {
    return this.s.id
  }
  get scope(): Scope {
    return this.s.scope
  }
  get owner(): string {
    return this.s.owner
  }
  get logLevel(): string | undefined {
    return this.s.logLevel
  }
  get events(): EventStore {
    return this.s.events
  }
  touch(): void {
    this.s.lastSeen = Date.now()
  }
}

const STANDALONE_STREAM = '_GET_stream'
/** Events a live tail reads per query. */
const TAIL_BATCH = 500
const KEEPALIVE_MS = 15_000

const rpcError = (status: number, code: number, message: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })

/**
 * The MCP Streamable HTTP endpoint for both protocol eras. 2025-11-25 traffic gets a sessionful
 * SDK transport (one Server per session, SSE, GET stream, DELETE, Last-Event-ID); 2026-07-28
 * traffic is stateless through the SDK's per-request handler.
 */
export class McpIngress {
  /** 2025-era sessions in this process, by id; `byKey` by their store key (signals name keys). */
  private readonly sessions = new Map<string, Session>()
  private readonly byKey = new Map<string, Session>()
  private readonly rebuilding = new Map<string, Promise<Session | undefined>>()
  private readonly events = new MemoryEventStore()
  private readonly modern = new Map<string, McpHttpHandler>()
  private readonly reaper: NodeJS.Timeout
  private readonly idleMs: number
  private readonly maxSessions: number
  private readonly maxSessionsPerOwner: number
  /** Sessions held by each principal (`ownerOf`), for the limits above. */
  private readonly owners = new Map<string, number>()
  private readonly fast: FastPath
  private readonly parking = new Parking()
  private readonly deps: HandlerDeps
  private readonly ids: SessionIds
  private readonly shared: SharedSessionsOptions | undefined
  private readonly checkMs: number
  private readonly pollMs: number
  /** Shared sessions: a touch moves expiry on at most this often, so the expiry is idle + this ahead. */
  private readonly touchEveryMs: number
  /** This process's tag in ids of requests it sends to clients, so an answer posted to another replica finds its way back. */
  private readonly tag = randomBytes(4).toString('hex')
  /** Live SSE tails by session key: each wakes when the session's events change or it ended. */
  private readonly tails = new Map<string, Set<(ended: boolean) => void>>()

  constructor(private readonly opts: McpIngressOptions) {
    this.idleMs = opts.sessionIdleMs ?? 30 * 60_000
    this.maxSessions = opts.maxSessions ?? 10_000
    this.maxSessionsPerOwner = opts.maxSessionsPerOwner ?? Math.max(1, Math.floor(this.maxSessions / 10))
    this.reaper = setInterval(() => this.reap(), Math.min(this.idleMs, 60_000))
    this.reaper.unref()
    this.deps = { ...opts, parking: this.parking }
    this.ids = new SessionIds(opts.masterKeys)
    this.shared = opts.shared
    this.checkMs = opts.shared?.checkMs ?? 5000
    this.pollMs = opts.shared?.pollMs ?? 1000
    this.touchEveryMs = Math.min(60_000, Math.max(1000, Math.floor(this.idleMs / 4)))
    this.fast = new FastPath({
      parking: this.parking,
      registry: opts.registry,
      callTool: opts.callTool,
      session: (id) => this.fastSession(id),
    })
    opts.shared?.notifier.subscribe(SIGNAL_CHANNEL, (payload) => this.onSignal(payload))
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  /** Serves one HTTP request on `/mcp` or `/mcp/{server}`; `body` is the raw POST body, already size-checked. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: CallContext,
    scope: Scope,
    body: Buffer | undefined,
  ): Promise<void> {
    let parsed: unknown
    if (req.method === 'POST') {
      const type = String(req.headers['content-type'] ?? '')
      if (!/^application\/json\b/i.test(type)) {
        return send(
          res,
          rpcError(415, -32000, 'Unsupported Media Type: Content-Type must be application/json'),
        )
      }
      try {
        parsed = JSON.parse(body!.toString('utf8'))
      } catch {
        return send(res, rpcError(400, -32700, 'Parse error: the body is not valid JSON'))
      }
      if (parsed === null || typeof parsed !== 'object')
        return send(res, rpcError(400, -32600, 'Invalid Request: expected a JSON-RPC message'))
    }
    if (this.shared) {
      const sid = req.headers['mcp-session-id']
      if (typeof sid === 'string') {
        const early = await this.sharedSession(req, ctx, scope, sid, parsed)
        if (early instanceof Response) return send(res, early)
        parsed = early
      }
    }
    if (req.method === 'POST') {
      if (await this.fast.tryHandle(req, res, ctx, scope, parsed)) return
      this.noticeSessionMessage(req, ctx, parsed)
    }
    const ac = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) ac.abort()
    })
    const request = toWebRequest(req, ac.signal)
    const authInfo = authInfoOf(ctx)
    const opts = { ...(parsed !== undefined ? { parsedBody: parsed } : {}), authInfo }
    let response: Response
    if (req.method !== 'POST' || (await isLegacyRequest(request, parsed))) {
      response = await this.legacy(request, opts, ctx, scope, parsed)
    } else {
      response = await this.modernHandler(scope).fetch(request, opts)
    }
    await send(res, response)
  }

  /** A tenant's lists changed: tell its 2025 sessions and the 2026 subscription streams. */
  listChanged(tenant: string, kind: ListKind): void {
    for (const s of this.sessions.values()) {
      if (s.scope.tenant !== tenant) continue
      const p =
        kind === 'tools'
          ? s.server.sendToolListChanged()
          : kind === 'prompts'
            ? s.server.sendPromptListChanged()
            : s.server.sendResourceListChanged()
      void p.catch(() => {})
    }
    for (const [k, h] of this.modern) {
      if (!k.startsWith(`${tenant}/`)) continue
      if (kind === 'tools') h.notify.toolsChanged()
      else if (kind === 'prompts') h.notify.promptsChanged()
      else h.notify.resourcesChanged()
    }
  }

  /** An upstream says a resource changed: tell the tenant's sessions subscribed to it. */
  upstreamNotification(tenant: string, method: string, params: JsonObject | undefined): void {
    if (method !== 'notifications/resources/updated') return
    const uri = String(params?.uri ?? '')
    for (const s of this.sessions.values()) {
      if (s.scope.tenant === tenant && s.subscriptions.has(uri))
        void s.server.sendResourceUpdated({ uri }).catch(() => {})
    }
    for (const [k, h] of this.modern) if (k.startsWith(`${tenant}/`)) h.notify.resourceUpdated(uri)
  }

  async close(): Promise<void> {
    clearInterval(this.reaper)
    this.parking.close()
    for (const set of this.tails.values()) for (const wake of set) wake(true)
    this.tails.clear()
    const all = [...this.sessions.values()]
    this.sessions.clear()
    this.byKey.clear()
    await Promise.allSettled(all.map((s) => s.server.close()))
    await Promise.allSettled([...this.modern.values()].map((h) => h.close()))
  }

  private async legacy(
    request: Request,
    opts: object,
    ctx: CallContext,
    scope: Scope,
    parsed: unknown,
  ): Promise<Response> {
    const sid = request.headers.get('mcp-session-id')
    if (sid) {
      const s = this.sessions.get(sid)
      // A session of another principal, tenant or endpoint is as unknown as an expired one.
      if (
        !s ||
        s.owner !== ownerOf(ctx) ||
        s.scope.tenant !== scope.tenant ||
        s.scope.server !== scope.server
      ) {
        return rpcError(404, -32001, 'Session not found')
      }
      s.lastSeen = Date.now()
      if (request.method === 'DELETE' && !this.shared) this.events.dropSession(s.claims.k)
      return s.transport.handleRequest(request, opts)
    }
    if (request.method !== 'POST' || !isInitializeRequest(parsed)) {
      return rpcError(400, -32000, 'Bad Request: no valid Mcp-Session-Id (send initialize first)')
    }
    this.makeRoom(ownerOf(ctx))
    const now = Date.now()
    const { id, claims } = this.ids.issue(scope.tenant, ownerOf(ctx), scope.server, parsed, now)
    if (this.shared) {
      // The row exists before the client learns the id, so any replica it goes to next knows it.
      try {
        await this.shared.store.open(refOf(claims), now, now + this.ttlMs)
      } catch (err) {
        this.opts.logger.warn({ err: (err as Error).message }, 'cannot record a new MCP session')
        return rpcError(503, -32603, 'Service Unavailable: the session store cannot be reached; retry')
      }
    }
    const s = this.createSession(id, claims, scope, now)
    await s.server.connect(s.transport)
    return s.transport.handleRequest(request, opts)
  }

  /** A session's server and transport (registered once its initialize has been handled). */
  private createSession(id: string, claims: SessionClaims, scope: Scope, now: number): Session {
    const subscriptions = new Set<string>()
    const server = buildServer(
      {
        ...this.deps,
        subscriptions: { add: (u) => subscriptions.add(u), remove: (u) => subscriptions.delete(u) },
      },
      scope,
    )
    const ref = refOf(claims)
    const events = this.shared
      ? new SharedSessionEvents(this.shared.store, ref, this.shared.notifier)
      : this.events.forSession(claims.k)
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      eventStore: events,
      retryInterval: 1000,
      maxRequestBodySize: this.opts.maxBodyBytes,
      onsessioninitialized: () => {
        if (!this.sessions.has(id)) this.owners.set(session.owner, (this.owners.get(session.owner) ?? 0) + 1)
        this.sessions.set(id, session)
        this.byKey.set(claims.k, session)
      },
      onsessionclosed: () => this.forget(id),
    })
    transport.onclose = () => this.forget(id)
    if (this.shared) {
      // Requests this process sends the client carry its tag, so an answer posted to another
      // replica is routed back here (onSignal 'answer').
      const sendRaw = transport.send.bind(transport)
      const prefix = `g${this.tag}.`
      transport.send = (m, o) =>
        sendRaw(
          'method' in m && 'id' in m && m.id !== undefined
            ? ({ ...m, id: `${prefix}${String(m.id)}` } as JSONRPCMessage)
            : m,
          o,
        )
    }
    const session: Session = {
      id,
      claims,
      ref,
      transport,
      server,
      scope,
      owner: claims.o,
      lastSeen: now,
      subscriptions,
      events,
      checkedAt: now,
      touchedAt: now,
    }
    return session
  }

  /** How far ahead a shared session's expiry is set: idle time, plus the touch interval (a use between touches moves nothing). */
  private get ttlMs(): number {
    return this.idleMs + this.touchEveryMs
  }

  /**
   * Replicas: make a request's session present here (rebuilt from its sealed id, checked live in
   * the store) before it is served, and handle what only the shared mode has: DELETE ends it in
   * the store, GET streams come from the store, answers to another replica's requests and
   * cancellations are routed. Returns an early response, or the (possibly rewritten) body.
   */
  private async sharedSession(
    req: IncomingMessage,
    ctx: CallContext,
    scope: Scope,
    sid: string,
    parsed: unknown,
  ): Promise<Response | unknown> {
    const claims = this.ids.open(sid)
    // Not ours, tampered, or another principal's, tenant's or endpoint's: the usual 404 follows.
    if (
      !claims ||
      claims.o !== ownerOf(ctx) ||
      claims.t !== scope.tenant ||
      (claims.s ?? undefined) !== scope.server
    )
      return parsed
    const store = this.shared!.store
    if (req.method === 'DELETE') {
      const ended = await store.terminate(refOf(claims), Date.now())
      this.shared!.notifier.publish(SIGNAL_CHANNEL, encodeSignal({ type: 'ended', key: claims.k }))
      return ended ? new Response(null, { status: 200 }) : rpcError(404, -32001, 'Session not found')
    }
    const s = await this.present(sid, claims, ctx)
    if (!s) return rpcError(404, -32001, 'Session not found')
    s.lastSeen = Date.now()
    if (req.method === 'GET') return this.tail(req, s)
    if (req.method !== 'POST') return parsed
    return this.routeClientMessages(s, parsed)
  }

  /** The local copy of a live shared session: known and recently checked, or rebuilt here. */
  private async present(sid: string, claims: SessionClaims, ctx: CallContext): Promise<Session | undefined> {
    const now = Date.now()
    const s = this.sessions.get(sid)
    if (s) {
      if (now - s.checkedAt < this.checkMs) return s
      if (await this.confirm(s, now)) return s
      this.drop(s)
      return undefined
    }
    let p = this.rebuilding.get(sid)
    if (!p) {
      p = this.rebuild(sid, claims, ctx).finally(() => this.rebuilding.delete(sid))
      this.rebuilding.set(sid, p)
    }
    return p
  }

  /** Asks the store whether a session is still live, moving its expiry on when due. */
  private async confirm(s: Session, now: number): Promise<boolean> {
    const extend = now - s.touchedAt >= this.touchEveryMs
    const live = await this.shared!.store.touch(s.ref, now, extend ? now + this.ttlMs : undefined)
    if (live) {
      s.checkedAt = now
      if (extend) s.touchedAt = now
    }
    return live
  }

  /**
   * A session opened on another replica (or closed here earlier): if the store says it is live,
   * a fresh server and transport answer under the same id, after the client's initialize (carried
   * in the id) is replayed into them without a trace on the wire or in the store.
   */
  private async rebuild(sid: string, claims: SessionClaims, ctx: CallContext): Promise<Session | undefined> {
    const now = Date.now()
    if (!(await this.shared!.store.touch(refOf(claims), now, now + this.ttlMs))) return undefined
    this.makeRoom(claims.o)
    const scope: Scope = { tenant: claims.t, ...(claims.s !== undefined ? { server: claims.s } : {}) }
    const s = this.createSession(sid, claims, scope, now)
    const events = s.events as SharedSessionEvents
    events.muted = true
    try {
      await s.server.connect(s.transport)
      const headers = {
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        'mcp-session-id': sid,
      }
      const replay = async (message: JsonObject) => {
        const r = await s.transport.handleRequest(
          new Request('http://gatehouse.invalid/mcp', { method: 'POST', headers }),
          { parsedBody: message, authInfo: authInfoOf(ctx) },
        )
        await r.text()
        return r.status
      }
      const init = await replay({ jsonrpc: '2.0', id: 0, method: 'initialize', params: claims.i })
      const done = await replay({ jsonrpc: '2.0', method: 'notifications/initialized' })
      if (init !== 200 || done !== 202 || !s.server.getClientCapabilities())
        throw new Error(`replaying initialize answered ${init}/${done}`)
    } catch (err) {
      this.forget(sid)
      void s.server.close().catch(() => {})
      this.opts.logger.warn({ err: (err as Error).message }, 'cannot rebuild an MCP session')
      return undefined
    } finally {
      events.muted = false
    }
    return this.sessions.get(sid)
  }

  /**
   * Client messages that concern other replicas: answers to requests another replica sent go to
   * it through the store's inbox and a notification; cancellations also reach every replica
   * holding the session. Returns 202 when nothing is left for this replica, else the body to serve.
   */
  private async routeClientMessages(s: Session, parsed: unknown): Promise<Response | unknown> {
    const batch = Array.isArray(parsed)
    const messages = (batch ? parsed : [parsed]) as JsonObject[]
    const keep: JsonObject[] = []
    let changed = false
    for (const m of messages) {
      if (m && typeof m === 'object' && m.method === 'notifications/cancelled') {
        const p = (m.params ?? {}) as JsonObject
        // A request id is a string or a number; an oversized one could not be a request of ours,
        // and would overflow PostgreSQL's 8000-byte NOTIFY payload (failing the whole batch).
        const id = p.requestId
        if (!((typeof id === 'string' && id.length <= 200) || typeof id === 'number')) {
          keep.push(m)
          continue
        }
        const message = {
          jsonrpc: '2.0',
          method: 'notifications/cancelled',
          params: { requestId: id, reason: String(p.reason ?? 'cancelled').slice(0, 200) },
        }
        this.shared!.notifier.publish(
          SIGNAL_CHANNEL,
          encodeSignal({ type: 'cancel', key: s.claims.k, message }),
        )
      }
      const tagged = answerTag(m)
      if (!tagged) {
        keep.push(m)
        continue
      }
      changed = true
      if (tagged.tag === this.tag) {
        keep.push({ ...m, id: tagged.n })
        continue
      }
      const eventId = await this.shared!.store.appendEvent(
        s.ref,
        inboxStream(tagged.tag),
        JSON.stringify({ ...m, id: tagged.n }),
        Date.now(),
      )
      this.shared!.notifier.publish(
        SIGNAL_CHANNEL,
        encodeSignal({ type: 'answer', key: s.claims.k, tag: tagged.tag, eventId }),
      )
    }
    if (!keep.length) return new Response(null, { status: 202 })
    if (!changed) return parsed
    return batch ? keep : keep[0]
  }

  /**
   * A GET stream of a shared session, served from the store: Last-Event-ID resumes any stream
   * (written here or on another replica) and follows it until its answer; without it, the
   * session's standalone stream from now on. Wakes on notifications, polls as a fallback.
   */
  private tail(req: IncomingMessage, s: Session): Response | Promise<Response> {
    if (!String(req.headers.accept ?? '').includes('text/event-stream'))
      return rpcError(406, -32000, 'Not Acceptable: Client must accept text/event-stream')
    const last = req.headers['last-event-id']
    return this.openTail(s, typeof last === 'string' && last ? last : undefined)
  }

  private async openTail(s: Session, last: string | undefined): Promise<Response> {
    const store = this.shared!.store
    const stream = last ? await store.streamOf(s.ref, last, Date.now()) : STANDALONE_STREAM
    if (!stream || stream.startsWith('_inbox:'))
      return rpcError(
        400,
        -32000,
        'Bad Request: unknown Last-Event-ID (expired, or not an event of this session)',
      )
    let cursor = last ?? (await store.lastEventId(s.ref, stream))
    const finite = stream !== STANDALONE_STREAM
    const enc = new TextEncoder()
    let closed = false
    let wake: ((ended: boolean) => void) | undefined
    let ended = false
    const waiter = (e: boolean) => {
      if (e) ended = true
      wake?.(e)
    }
    const key = s.claims.k
    let set = this.tails.get(key)
    if (!set) this.tails.set(key, (set = new Set()))
    set.add(waiter)
    const stop = () => {
      closed = true
      const set = this.tails.get(key)
      set?.delete(waiter)
      if (set && !set.size) this.tails.delete(key)
      wake?.(true)
    }
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const write = (text: string) => {
          if (!closed) controller.enqueue(enc.encode(text))
        }
        void (async () => {
          let checkedAt = Date.now()
          let quietSince = Date.now()
          try {
            while (!closed && !ended) {
              const events = await store.eventsAfter(s.ref, stream, cursor, Date.now(), TAIL_BATCH)
              for (const e of events) {
                cursor = e.id
                write(
                  e.message === '{}'
                    ? `id: ${e.id}\ndata: \n\n`
                    : `event: message\nid: ${e.id}\ndata: ${e.message}\n\n`,
                )
                if (finite && isAnswerText(e.message)) return
              }
              if (events.length) quietSince = Date.now()
              if (events.length === TAIL_BATCH) continue
              const now = Date.now()
              if (now - checkedAt >= this.checkMs) {
                if (!(await store.touch(s.ref, now))) return
                checkedAt = now
              }
              if (now - quietSince >= KEEPALIVE_MS) {
                write(': keepalive\n\n')
                quietSince = now
              }
              await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, this.pollMs)
                wake = () => {
                  clearTimeout(t)
                  resolve()
                }
              })
              wake = undefined
            }
          } catch (err) {
            this.opts.logger.debug({ err: (err as Error).message }, 'mcp session stream ended by an error')
          } finally {
            stop()
            try {
              controller.close()
            } catch {
              // already cancelled
            }
          }
        })()
      },
      cancel: () => stop(),
    })
    return new Response(body, {
      status: 200,
      headers: {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        'mcp-session-id': s.id,
      },
    })
  }

  /** What another replica (or this one) says about a shared session. */
  private onSignal(payload: string): void {
    const sig: SessionSignal | undefined = decodeSignal(payload)
    if (!sig) return
    if (sig.type === 'events') {
      for (const w of this.tails.get(sig.key) ?? []) w(false)
      return
    }
    if (sig.type === 'ended') {
      for (const w of this.tails.get(sig.key) ?? []) w(true)
      const s = this.byKey.get(sig.key)
      if (s) this.drop(s)
      return
    }
    const s = this.byKey.get(sig.key)
    if (!s) return
    if (sig.type === 'cancel') {
      const params = sig.message.params as { requestId?: unknown; reason?: unknown }
      this.fast.cancel(s.id, params.requestId, params.reason)
      s.transport.onmessage?.(sig.message as JSONRPCMessage, { authInfo: undefined } as never)
      return
    }
    if (sig.tag !== this.tag) return
    void (async () => {
      const id = Number(sig.eventId)
      const [e] = await this.shared!.store.eventsAfter(
        s.ref,
        inboxStream(this.tag),
        String(id - 1 || 0),
        Date.now(),
        1,
      )
      if (!e || e.id !== sig.eventId) return
      s.transport.onmessage?.(JSON.parse(e.message) as JSONRPCMessage, {} as never)
    })().catch((err: unknown) =>
      this.opts.logger.warn(
        { err: (err as Error).message },
        'cannot deliver an answer routed from another replica',
      ),
    )
  }

  /** Closes this process's copy of a session (it ended, or it is idle here). */
  private drop(s: Session): void {
    this.forget(s.id)
    void s.server.close().catch(() => {})
  }

  /**
   * Messages the fast path must know about although the SDK answers them: `notifications/cancelled`
   * may name a call the fast path runs, `logging/setLevel` sets the threshold it filters logs by.
   */
  private noticeSessionMessage(req: IncomingMessage, ctx: CallContext, parsed: unknown): void {
    const sid = req.headers['mcp-session-id']
    const m = parsed as {
      method?: unknown
      params?: { requestId?: unknown; reason?: unknown; level?: unknown }
    }
    if (typeof sid !== 'string' || !m.params) return
    const s = this.sessions.get(sid)
    if (!s || s.owner !== ownerOf(ctx)) return
    if (m.method === 'notifications/cancelled') this.fast.cancel(sid, m.params.requestId, m.params.reason)
    // The SDK keeps its own copy; the fast path needs one to filter relayed log messages.
    const level = (m.params as { level?: unknown }).level
    if (m.method === 'logging/setLevel' && typeof level === 'string') s.logLevel = level
  }

  /** The fast path's view of a 2025 session (undefined until initialize has completed). */
  private fastSession(id: string): FastSession | undefined {
    const s = this.sessions.get(id)
    if (!s) return undefined
    if (s.view) return s.view
    const caps = s.server.getClientCapabilities()
    if (!caps) return undefined
    return (s.view = new SessionView(s, Boolean(caps.elicitation || caps.sampling || caps.roots)))
  }

  private modernHandler(scope: Scope): McpHttpHandler {
    const k = `${scope.tenant}/${scope.server ?? ''}`
    let h = this.modern.get(k)
    if (!h) {
      h = createMcpHandler(() => buildServer(this.deps, scope), {
        legacy: 'reject',
        maxRequestBodySize: this.opts.maxBodyBytes,
        onerror: (err) => this.opts.logger.debug({ err }, 'mcp (2026) handler error'),
      })
      this.modern.set(k, h)
    }
    return h
  }

  private forget(id: string): void {
    const s = this.sessions.get(id)
    if (!s) return
    this.sessions.delete(id)
    const held = (this.owners.get(s.owner) ?? 1) - 1
    if (held > 0) this.owners.set(s.owner, held)
    else this.owners.delete(s.owner)
    if (this.byKey.get(s.claims.k) === s) this.byKey.delete(s.claims.k)
  }

  /** Before a session of `owner` opens: its own limit, then the process's (see the options). */
  private makeRoom(owner: string): void {
    if ((this.owners.get(owner) ?? 0) >= this.maxSessionsPerOwner) this.evict(owner, 1)
    if (this.sessions.size < this.maxSessions) return
    this.reap()
    if (this.sessions.size < this.maxSessions) return
    let most: string | undefined
    let count = 0
    for (const [o, n] of this.owners) if (n > count) [most, count] = [o, n]
    if (most !== undefined) this.evict(most, Math.ceil(count / 10))
  }

  /** Closes the `n` least recently used sessions of `owner`. */
  private evict(owner: string, n: number): void {
    const mine = [...this.sessions.values()].filter((s) => s.owner === owner)
    for (const s of mine.sort((a, b) => a.lastSeen - b.lastSeen).slice(0, n)) this.drop(s)
  }

  /** Closes idle sessions. */
  private reap(): void {
    const now = Date.now()
    for (const s of [...this.sessions.values()]) if (now - s.lastSeen > this.idleMs) this.drop(s)
  }
}

const authInfoOf = (ctx: CallContext) => ({
  token: 'authenticated',
  clientId: ctx.principal.id,
  scopes: [...ctx.scopes],
  extra: { callContext: ctx },
})

/** A client's answer to a request some replica sent (id `g{tag}.{n}`): the tag and the SDK's own id. */
function answerTag(m: JsonObject): { tag: string; n: number } | undefined {
  if (!m || typeof m !== 'object' || 'method' in m || typeof m.id !== 'string') return undefined
  if (!('result' in m) && !('error' in m)) return undefined
  const x = /^g([0-9a-f]{8})\.(\d{1,15})$/.exec(m.id)
  return x ? { tag: x[1]!, n: Number(x[2]) } : undefined
}

/** Whether a stored event is the answer that ends a request's stream. */
function isAnswerText(message: string): boolean {
  try {
    const m = JSON.parse(message) as JsonObject
    return !('method' in m) && 'id' in m && ('result' in m || 'error' in m)
  } catch {
    return false
  }
}

/** A body-less Web Request carrying the node request's method, URL and headers (the body is passed parsed). */
function toWebRequest(req: IncomingMessage, signal: AbortSignal): Request {
  const headers = new Headers()
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue
    headers.set(k, Array.isArray(v) ? v.join(', ') : v)
  }
  return new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
    signal,
  })
}

/** Writes a Web Response to node: buffered for JSON, streamed for SSE. */
export async function send(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string> = {}
  response.headers.forEach((v, k) => {
    headers[k] = v
  })
  if (!response.body) {
    res.writeHead(response.status, headers).end()
    return
  }
  if ((headers['content-type'] ?? '').startsWith('text/event-stream')) {
    res.writeHead(response.status, headers)
    res.flushHeaders()
    const reader = response.body.getReader()
    const stop = () => void reader.cancel().catch(() => {})
    // The client may have gone before this runs (the response was built after awaits): 'close'
    // has then fired already and will not again, so cancel the stream now, or it (and the SSE
    // tail feeding it) would live as long as the session.
    if (res.destroyed || res.socket?.destroyed !== false) stop()
    else res.on('close', stop)
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        // A write the socket cannot take waits for 'drain', or for the close that never drains.
        if (!res.write(value))
          await new Promise<void>((r) => {
            const go = () => {
              res.off('drain', go)
              res.off('close', go)
              r()
            }
            res.on('drain', go)
            res.on('close', go)
          })
        if (res.destroyed) break
      }
    } catch {
      // client went away
    }
    stop()
    res.end()
    return
  }
  const buf = Buffer.from(await response.arrayBuffer())
  headers['content-length'] = String(buf.length)
  res.writeHead(response.status, headers).end(buf)
}
