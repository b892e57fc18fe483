import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  WebStandardStreamableHTTPServerTransport,
  type McpHttpHandler,
  type Server,
} from '@modelcontextprotocol/server'
import type { CallContext } from '../context.js'
import type { Logger } from '../log.js'
import type { ListKind } from '../upstream/connection.js'
import type { JsonObject } from '../upstream/rpc.js'
import { MemoryEventStore } from './event-store.js'
import { FastPath, type FastSession } from './fast-path.js'
import { buildServer, ownerOf, type HandlerDeps, type Scope } from './handlers.js'
import { Parking } from './parking.js'

export interface McpIngressOptions extends Omit<HandlerDeps, 'subscriptions' | 'parking'> {
  logger: Logger
  maxBodyBytes: number
  /** Idle 2025-era sessions are closed after this long. */
  sessionIdleMs?: number
  maxSessions?: number
}

interface Session {
  id: string
  transport: WebStandardStreamableHTTPServerTransport
  server: Server
  scope: Scope
  /** The principal that opened the session; nobody else may use it. */
  owner: string
  lastSeen: number
  subscriptions: Set<string>
  logLevel?: string
}

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
  private readonly sessions = new Map<string, Session>()
  private readonly events = new MemoryEventStore()
  private readonly modern = new Map<string, McpHttpHandler>()
  private readonly reaper: NodeJS.Timeout
  private readonly idleMs: number
  private readonly maxSessions: number
  private readonly fast: FastPath
  private readonly parking = new Parking()
  private readonly deps: HandlerDeps

  constructor(private readonly opts: McpIngressOptions) {
    this.idleMs = opts.sessionIdleMs ?? 30 * 60_000
    this.maxSessions = opts.maxSessions ?? 10_000
    this.reaper = setInterval(() => this.reap(), Math.min(this.idleMs, 60_000))
    this.reaper.unref()
    this.deps = { ...opts, parking: this.parking }
    this.fast = new FastPath({
      parking: this.parking,
      registry: opts.registry,
      callTool: opts.callTool,
      events: this.events,
      session: (id) => this.fastSession(id),
    })
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
    if (req.method === 'POST') {
      if (await this.fast.tryHandle(req, res, ctx, scope, parsed)) return
      this.noticeSessionMessage(req, ctx, parsed)
    }
    const ac = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) ac.abort()
    })
    const request = toWebRequest(req, ac.signal)
    const authInfo = {
      token: 'authenticated',
      clientId: ctx.principal.id,
      scopes: [...ctx.scopes],
      extra: { callContext: ctx },
    }
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
    const all = [...this.sessions.values()]
    this.sessions.clear()
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
      return s.transport.handleRequest(request, opts)
    }
    if (request.method !== 'POST' || !isInitializeRequest(parsed)) {
      return rpcError(400, -32000, 'Bad Request: no valid Mcp-Session-Id (send initialize first)')
    }
    if (this.sessions.size >= this.maxSessions) this.reap(true)
    const id = randomUUID()
    const subscriptions = new Set<string>()
    const server = buildServer(
      {
        ...this.deps,
        subscriptions: { add: (u) => subscriptions.add(u), remove: (u) => subscriptions.delete(u) },
      },
      scope,
    )
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => id,
      eventStore: this.events,
      retryInterval: 1000,
      maxRequestBodySize: this.opts.maxBodyBytes,
      onsessioninitialized: () => {
        this.sessions.set(id, {
          id,
          transport,
          server,
          scope,
          owner: ownerOf(ctx),
          lastSeen: Date.now(),
          subscriptions,
        })
      },
      onsessionclosed: () => this.forget(id),
    })
    transport.onclose = () => this.forget(id)
    await server.connect(transport)
    return transport.handleRequest(request, opts)
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
    const caps = s.server.getClientCapabilities()
    if (!caps) return undefined
    return {
      id,
      scope: s.scope,
      owner: s.owner,
      relaysRequests: Boolean(caps.elicitation || caps.sampling || caps.roots),
      logLevel: s.logLevel,
      get lastSeen() {
        return s.lastSeen
      },
      set lastSeen(v: number) {
        s.lastSeen = v
      },
    }
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
  }

  /** Closes idle sessions; under pressure, also the least recently used tenth. */
  private reap(pressure = false): void {
    const now = Date.now()
    const victims = [...this.sessions.values()].filter((s) => now - s.lastSeen > this.idleMs)
    if (pressure && victims.length === 0) {
      victims.push(
        ...[...this.sessions.values()]
          .sort((a, b) => a.lastSeen - b.lastSeen)
          .slice(0, Math.ceil(this.sessions.size / 10)),
      )
    }
    for (const s of victims) {
      this.forget(s.id)
      void s.server.close().catch(() => {})
    }
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
async function send(res: ServerResponse, response: Response): Promise<void> {
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
    res.on('close', () => void reader.cancel().catch(() => {}))
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        if (!res.write(value)) await new Promise((r) => res.once('drain', r))
      }
    } catch {
      // client went away
    }
    res.end()
    return
  }
  const buf = Buffer.from(await response.arrayBuffer())
  headers['content-length'] = String(buf.length)
  res.writeHead(response.status, headers).end(buf)
}
