import { LRUCache } from 'lru-cache'
import type { Logger } from '../log.js'
import type { ConnectorSpec } from '../manifests/schema.js'
import type { SecretResolver } from '../vault/secrets.js'
import { HttpTransport, LEGACY, MODERN, SessionExpiredError, type Era } from './http.js'
import {
  UpstreamAuthRejected,
  UpstreamHttpStatus,
  UpstreamRpcError,
  UpstreamTimeout,
  UpstreamUnavailableError,
  type JsonObject,
  type RequestOptions,
  type RpcTransport,
} from './rpc.js'
import { StdioTransport } from './stdio.js'

export const CLIENT_INFO = { name: 'gatehouse', version: '0.1.0' }
/** What the gateway tells upstreams it can do: it relays these to the downstream client. */
export const CLIENT_CAPABILITIES: JsonObject = {
  sampling: {},
  elicitation: { form: {}, url: {} },
  roots: { listChanged: true },
}

export type ConnectionStatus = 'idle' | 'connecting' | 'ready' | 'down' | 'stopped'
export type ListKind = 'tools' | 'resources' | 'resourceTemplates' | 'prompts'

export interface UpstreamConnectionOptions {
  tenant: string
  name: string
  spec: ConnectorSpec
  secrets: SecretResolver
  logger: Logger
  /** Default per-request timeout when the connector sets none. */
  timeoutMs: number
  /** Called when an upstream list changed (notification, reconnect). */
  onListChanged(kind: ListKind): void
  /** Connection-level notifications (resource updates, stray logs). */
  onNotification?(method: string, params: JsonObject | undefined): void
  /** Called on every status change (metrics). */
  onStatus?(status: ConnectionStatus): void
  /** Headers read on every HTTP request, initialize included (a brokered user's current token). */
  dynamicHeaders?: () => Record<string, string>
}

interface Live {
  transport: RpcTransport
  era: Era
  capabilities: JsonObject
  serverInfo: JsonObject
  instructions?: string
}

const LIST_METHODS: Record<ListKind, { method: string; field: string }> = {
  tools: { method: 'tools/list', field: 'tools' },
  resources: { method: 'resources/list', field: 'resources' },
  resourceTemplates: { method: 'resources/templates/list', field: 'resourceTemplates' },
  prompts: { method: 'prompts/list', field: 'prompts' },
}

const MAX_LIST_PAGES = 50

/** The list changes a 2026 upstream announced it can tell us about. */
function listenFilter(caps: JsonObject): JsonObject {
  const changes = (k: string) => Boolean((caps[k] as JsonObject | undefined)?.listChanged)
  const f: JsonObject = {}
  if (changes('tools')) f.toolsListChanged = true
  if (changes('prompts')) f.promptsListChanged = true
  if (changes('resources')) f.resourcesListChanged = true
  return f
}

const CANCELLED = -32800
const UNSUPPORTED_PROTOCOL_VERSION = -32022

/**
 * Whether a failed `server/discover` shows the upstream does not speak 2026-07-28 (MCP 2026-07-28,
 * Streamable HTTP "Backward Compatibility"): a JSON-RPC error answer, or a bare 400/404/405. A
 * refused credential, a timeout, a 429 or 5xx, a server fault or a network error says nothing about
 * the era: it fails this attempt only, and the next connect probes again.
 */
function showsLegacyEra(err: unknown): boolean {
  if (!(err instanceof UpstreamRpcError) || err instanceof UpstreamAuthRejected) return false
  if (err instanceof UpstreamTimeout || err.code === CANCELLED) return false
  if (err instanceof UpstreamHttpStatus) return err.status === 400 || err.status === 404 || err.status === 405
  if (err.code === UNSUPPORTED_PROTOCOL_VERSION) {
    const supported = (err.data as JsonObject | undefined)?.supported
    return !(Array.isArray(supported) && supported.includes(MODERN))
  }
  return true
}

/** A child that stays up this long is healthy again: its restart backoff resets. */
const HEALTHY_AFTER_MS = 30_000

/**
 * One upstream MCP server: connects lazily, restarts with backoff after a crash, re-initialises
 * an expired session transparently, and caches its lists until they change.
 */
/**
 * What the registry and the MCP handlers need of an upstream: an {@link UpstreamConnection}, or a
 * brokered connector whose calls carry each caller's own token (src/connections/upstream.ts).
 */
export interface Upstream {
  readonly tenant: string
  readonly name: string
  readonly spec: ConnectorSpec
  readonly status: ConnectionStatus
  readonly era: Era | undefined
  readonly lastError: string | undefined
  readonly capabilities: JsonObject | undefined
  ensure(): Promise<unknown>
  request(
    method: string,
    params: JsonObject | undefined,
    ro: Omit<RequestOptions, 'timeoutMs'> & { timeoutMs?: number },
  ): Promise<JsonObject>
  list(kind: ListKind): Promise<JsonObject[]>
  invalidate(kind: ListKind): void
  close(): Promise<void>
}

export class UpstreamConnection implements Upstream {
  readonly tenant: string
  readonly name: string
  readonly spec: ConnectorSpec
  status: ConnectionStatus = 'idle'
  lastError: string | undefined
  private live: Live | undefined
  private connecting: Promise<Live> | undefined
  private failures = 0
  private nextAttemptAt = 0
  private restartTimer: NodeJS.Timeout | undefined
  private connectedAt = 0
  private modernUnsupported = false
  private readonly lists: LRUCache<ListKind, JsonObject[], unknown>

  constructor(private readonly opts: UpstreamConnectionOptions) {
    this.tenant = opts.tenant
    this.name = opts.name
    this.spec = opts.spec
    this.lists = new LRUCache<ListKind, JsonObject[], unknown>({
      max: 8,
      ttl: 5 * 60_000,
      fetchMethod: (kind) => this.fetchList(kind),
    })
  }

  get era(): Era | undefined {
    return this.live?.era
  }

  get capabilities(): JsonObject | undefined {
    return this.live?.capabilities
  }

  get timeoutMs(): number {
    return this.spec.timeout_ms ?? this.opts.timeoutMs
  }

  /** Connected upstream, connecting at most once at a time. */
  async ensure(): Promise<Live> {
    if (this.status === 'stopped') throw this.stoppedError()
    if (this.live) return this.live
    if (this.connecting) return this.connecting
    const wait = this.nextAttemptAt - Date.now()
    if (wait > 0) {
      throw new UpstreamUnavailableError(
        `connector ${this.name} is down (${this.lastError ?? 'unknown error'}); retrying in ${wait} ms`,
      )
    }
    this.setStatus('connecting')
    this.connecting = this.connect().then(
      async (live) => {
        this.connecting = undefined
        // close() ran while this connected: nobody will close this transport but us.
        if (this.status === 'stopped') {
          await live.transport.close().catch(() => {})
          throw this.stoppedError()
        }
        this.live = live
        this.connectedAt = Date.now()
        this.lastError = undefined
        this.setStatus('ready')
        this.lists.clear()
        for (const k of Object.keys(LIST_METHODS) as ListKind[]) this.opts.onListChanged(k)
        return live
      },
      (err: Error) => {
        this.connecting = undefined
        this.markDown(err)
        throw err instanceof UpstreamRpcError || err instanceof UpstreamUnavailableError
          ? err
          : new UpstreamUnavailableError(err.message, { cause: err })
      },
    )
    return this.connecting
  }

  /** One request, re-initialising once if the upstream session expired. */
  async request(
    method: string,
    params: JsonObject | undefined,
    ro: Omit<RequestOptions, 'timeoutMs'> & { timeoutMs?: number },
  ): Promise<JsonObject> {
    // Object.assign, not `{ ...ro, timeoutMs }`: V8 takes a slow path for a spread followed by
    // more properties (~1 µs per call on Node 20; docs/architecture.md, "Hot-path rules").
    const opts = Object.assign({}, ro) as RequestOptions
    opts.timeoutMs ??= this.timeoutMs
    const live = this.live ?? (await this.ensure())
    try {
      return await live.transport.request(method, params, opts)
    } catch (err) {
      if (!(err instanceof SessionExpiredError)) throw err
      this.opts.logger.info({ connector: this.name }, 'upstream session expired; re-initialising')
      // Other calls on the expired session go on: each learns of the expiry itself (and retries
      // here) or is still answered.
      this.drop(live, true)
      return (await this.ensure()).transport.request(method, params, opts)
    }
  }

  async list(kind: ListKind): Promise<JsonObject[]> {
    const live = await this.ensure()
    if (kind !== 'tools' && !this.hasCapability(live, kind)) return []
    // A list_changed during the fetch aborts it (undefined): fetch the new list instead.
    for (let attempt = 0; attempt < 3; attempt++) {
      const items = await this.lists.fetch(kind)
      if (items) return items
    }
    throw new UpstreamUnavailableError(`connector ${this.name}: ${kind} kept changing while being listed`)
  }

  /** Forget a cached list (list_changed). */
  invalidate(kind: ListKind): void {
    this.lists.delete(kind)
    this.opts.onListChanged(kind)
  }

  /** Stops for good. A connect in flight is waited for, and its transport closed as it lands. */
  async close(): Promise<void> {
    this.setStatus('stopped')
    if (this.restartTimer) clearTimeout(this.restartTimer)
    const live = this.live
    this.live = undefined
    await this.connecting?.catch(() => {})
    await live?.transport.close()
  }

  private stoppedError(): UpstreamUnavailableError {
    return new UpstreamUnavailableError(`connector ${this.name} is stopped`)
  }

  private hasCapability(live: Live, kind: ListKind): boolean {
    const cap = kind === 'resourceTemplates' ? 'resources' : kind
    return live.capabilities[cap] !== undefined
  }

  private async fetchList(kind: ListKind): Promise<JsonObject[]> {
    const { method, field } = LIST_METHODS[kind]
    const items: JsonObject[] = []
    let cursor: string | undefined
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const res = await this.request(method, cursor ? { cursor } : undefined, {})
      const got = res[field]
      if (Array.isArray(got)) items.push(...(got as JsonObject[]))
      cursor = typeof res.nextCursor === 'string' && res.nextCursor ? res.nextCursor : undefined
      if (!cursor) break
    }
    return items
  }

  private async connect(): Promise<Live> {
    const spec = this.spec
    if (spec.transport === 'stdio') {
      const env = this.opts.secrets.resolveMap(spec.env, `connector ${this.name} env`)
      const t = new StdioTransport({
        command: spec.command,
        args: spec.args,
        env,
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        logger: this.opts.logger,
      })
      return this.initialize(t, LEGACY)
    }
    if (spec.transport === 'builtin')
      throw new UpstreamUnavailableError(`connector ${this.name}: builtin connectors run in the token broker`)
    const headers = this.opts.secrets.resolveMap(spec.headers, `connector ${this.name} headers`)
    if (spec.auth?.type === 'static') {
      const token = this.opts.secrets.resolve(spec.auth.token, `connector ${this.name} auth.token`)
      headers[spec.auth.header.toLowerCase()] = spec.auth.scheme ? `${spec.auth.scheme} ${token}` : token
    }
    const url = new URL(spec.url)
    const make = (era: Era) =>
      new HttpTransport({
        url,
        era,
        headers,
        ...(this.opts.dynamicHeaders ? { dynamicHeaders: this.opts.dynamicHeaders } : {}),
        logger: this.opts.logger,
        envelope: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientInfo': CLIENT_INFO,
          'io.modelcontextprotocol/clientCapabilities': CLIENT_CAPABILITIES,
        },
      })
    const want = spec.protocol
    if (want === LEGACY || (want === 'auto' && this.modernUnsupported))
      return this.initialize(make(LEGACY), LEGACY)
    const modern = make(MODERN)
    try {
      const res = await modern.request('server/discover', undefined, {
        timeoutMs: Math.min(this.timeoutMs, 10_000),
      })
      const versions = Array.isArray(res.supportedVersions) ? (res.supportedVersions as string[]) : []
      if (!versions.includes(MODERN))
        throw new UpstreamRpcError(-32000, `upstream does not support ${MODERN}`)
      const live = this.adopt(modern, MODERN, res)
      modern.openListenStream(listenFilter(live.capabilities))
      return live
    } catch (err) {
      await modern.close()
      if (want === MODERN || !showsLegacyEra(err)) throw err
      this.modernUnsupported = true
      return this.initialize(make(LEGACY), LEGACY)
    }
  }

  private async initialize(t: RpcTransport, era: Era): Promise<Live> {
    try {
      const res = await t.request(
        'initialize',
        { protocolVersion: LEGACY, capabilities: CLIENT_CAPABILITIES, clientInfo: CLIENT_INFO },
        { timeoutMs: Math.min(this.timeoutMs, 30_000) },
      )
      if (t instanceof HttpTransport && typeof res.protocolVersion === 'string')
        t.protocolVersion = res.protocolVersion
      await t.notify('notifications/initialized')
      const live = this.adopt(t, era, res)
      if (t instanceof HttpTransport) t.openListenStream()
      return live
    } catch (err) {
      await t.close().catch(() => {})
      throw err
    }
  }

  private adopt(t: RpcTransport, era: Era, res: JsonObject): Live {
    const live: Live = {
      transport: t,
      era,
      capabilities: (res.capabilities as JsonObject) ?? {},
      serverInfo:
        ((res.serverInfo ??
          (res._meta as JsonObject | undefined)?.['io.modelcontextprotocol/serverInfo']) as JsonObject) ?? {},
      ...(typeof res.instructions === 'string' ? { instructions: res.instructions } : {}),
    }
    t.onNotification = (method, params) => {
      if (this.status !== 'stopped') this.onNotification(method, params)
    }
    t.onClose = (reason) => {
      if (this.live !== live) return
      this.opts.logger.warn(
        { connector: this.name, tenant: this.tenant, reason: reason.message },
        'upstream connection lost',
      )
      this.drop(live)
      this.markDown(reason)
    }
    return live
  }

  private onNotification(method: string, params: JsonObject | undefined): void {
    if (method === 'notifications/tools/list_changed') this.invalidate('tools')
    else if (method === 'notifications/prompts/list_changed') this.invalidate('prompts')
    else if (method === 'notifications/resources/list_changed') {
      this.invalidate('resources')
      this.invalidate('resourceTemplates')
    } else this.opts.onNotification?.(method, params)
  }

  private drop(live: Live, retire = false): void {
    if (this.live === live) this.live = undefined
    void live.transport.close(retire).catch(() => {})
  }

  /** Down: the next attempt waits an exponential backoff; a restart is scheduled proactively. */
  private markDown(err: Error): void {
    if (this.status === 'stopped') return
    this.lastError = err.message
    if (this.connectedAt && Date.now() - this.connectedAt > HEALTHY_AFTER_MS) this.failures = 0
    this.failures += 1
    const delay = Math.min(30_000, 250 * 2 ** (this.failures - 1))
    this.nextAttemptAt = Date.now() + delay
    this.setStatus('down')
    if (this.restartTimer) clearTimeout(this.restartTimer)
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined
      if (this.status === 'down') void this.ensure().catch(() => {})
    }, delay)
    this.restartTimer.unref()
  }

  private setStatus(s: ConnectionStatus): void {
    if (this.status === s) return
    this.status = s
    this.opts.onStatus?.(s)
  }
}
