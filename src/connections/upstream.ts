import { LRUCache } from 'lru-cache'
import { BUILTIN_CONNECTORS } from '../../connectors/index.js'
import { UpstreamAuthError, type BuiltinTool } from '../../connectors/types.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ConnectorSpec } from '../manifests/schema.js'
import type { CancelSignal } from '../upstream/cancel.js'
import {
  UpstreamConnection,
  type ConnectionStatus,
  type ListKind,
  type Upstream,
} from '../upstream/connection.js'
import type { Era } from '../upstream/http.js'
import {
  UpstreamAuthRejected,
  UpstreamRpcError,
  type CallerCredential,
  type JsonObject,
  type RequestOptions,
} from '../upstream/rpc.js'
import type { SecretResolver } from '../vault/secrets.js'

/** The upstream name of the stand-in tool a brokered MCP connector lists before anyone has connected. */
const CONNECT_TOOL = 'connect'

export interface BrokeredUpstreamOptions {
  tenant: string
  name: string
  spec: ConnectorSpec
  secrets: SecretResolver
  logger: Logger
  timeoutMs: number
  onListChanged(kind: ListKind): void
  onNotification?(method: string, params: JsonObject | undefined): void
  /**
   * Credentials to list an MCP upstream's tools with when no call is in hand: the tenant's most
   * recently connected users' (docs/connections.md says so); none before anyone connected.
   */
  listingCredentials(): Promise<
    { credential: CallerCredential; renew(): Promise<CallerCredential | undefined> }[]
  >
}

/** How long a learned tool list of an MCP upstream is served before it is listed again. */
const LEARNED_TTL_MS = 5 * 60_000
/** Per-user upstream sessions kept open per connector (least recently used go first). */
const MAX_USER_SESSIONS = 256

/**
 * A connector whose every call carries the caller's own token: a bundled tool layer
 * (`transport: builtin`, connectors/) or an HTTP MCP upstream with `auth: oauth2`, which gets one
 * upstream session per user so that a session never mixes two users' credentials.
 */
export class BrokeredUpstream implements Upstream {
  readonly tenant: string
  readonly name: string
  readonly spec: ConnectorSpec
  lastError: string | undefined
  private stopped = false
  private readonly builtin: Map<string, BuiltinTool> | undefined
  private readonly users: LRUCache<string, UserSession> | undefined
  private learned: { tools: JsonObject[]; at: number } | undefined
  private learning: Promise<JsonObject[]> | undefined

  constructor(private readonly opts: BrokeredUpstreamOptions) {
    this.tenant = opts.tenant
    this.name = opts.name
    this.spec = opts.spec
    const spec = opts.spec
    if (spec.transport === 'builtin') {
      const connector = BUILTIN_CONNECTORS[spec.builtin]
      if (!connector) throw new GatewayError('invalid_manifest', `unknown builtin connector ${spec.builtin}`)
      this.builtin = new Map(
        connector.tools(spec.base_url ? { baseUrl: spec.base_url } : {}).map((t) => [t.name, t]),
      )
    } else {
      this.users = new LRUCache<string, UserSession>({
        max: MAX_USER_SESSIONS,
        dispose: (s) => void s.conn.close().catch(() => {}),
      })
    }
  }

  get status(): ConnectionStatus {
    return this.stopped ? 'stopped' : 'ready'
  }

  get era(): Era | undefined {
    if (!this.users) return undefined
    for (const s of this.users.values()) if (s.conn.era) return s.conn.era
    return undefined
  }

  get capabilities(): JsonObject | undefined {
    return this.builtin ? { tools: {} } : { tools: { listChanged: true } }
  }

  async ensure(): Promise<void> {
    if (this.stopped) throw new GatewayError('upstream_unavailable', `connector ${this.name} is stopped`)
  }

  async list(kind: ListKind): Promise<JsonObject[]> {
    if (kind !== 'tools') return [] // resources and prompts of brokered upstreams are not aggregated (docs/connections.md)
    if (this.builtin) return [...this.builtin.values()].map(toolDef)
    const l = this.learned
    if (l && Date.now() - l.at < LEARNED_TTL_MS) return l.tools
    this.learning ??= this.learn().finally(() => (this.learning = undefined))
    return this.learning
  }

  invalidate(kind: ListKind): void {
    // Stale, not forgotten: if no connection can list again, the last known tools stay listed
    // (their calls then answer with a connect link).
    if (kind === 'tools' && this.learned) this.learned = { ...this.learned, at: 0 }
    this.opts.onListChanged(kind)
  }

  async request(
    method: string,
    params: JsonObject | undefined,
    ro: Omit<RequestOptions, 'timeoutMs'> & { timeoutMs?: number },
  ): Promise<JsonObject> {
    const cred = ro.credential
    if (!cred)
      throw new GatewayError(
        'not_supported',
        `connector ${this.name} acts as each user: ${method} is only available on a user's own call`,
      )
    if (this.builtin) return this.runBuiltin(method, params, cred, ro.signal)
    // The stand-in tool answers itself, unless the upstream has a real tool of that name.
    if (
      method === 'tools/call' &&
      params?.name === CONNECT_TOOL &&
      !this.learned?.tools.some((t) => t.name === CONNECT_TOOL)
    )
      return { content: [{ type: 'text', text: `Your ${this.name} account is connected.` }] }
    return this.session(cred).request(method, params, ro)
  }

  async close(): Promise<void> {
    this.stopped = true
    this.users?.clear()
  }

  /**
   * The tool list of an MCP upstream, as a connected user of the tenant sees it: the most recent
   * connection whose token the upstream accepts (refreshed once if refused).
   */
  private async learn(): Promise<JsonObject[]> {
    let failure: unknown
    for (const candidate of await this.opts.listingCredentials()) {
      let cred: CallerCredential | undefined = candidate.credential
      for (let attempt = 0; cred && attempt < 2; attempt++) {
        try {
          const tools = await this.session(cred).list('tools')
          this.learned = { tools, at: Date.now() }
          this.lastError = undefined
          return tools
        } catch (err) {
          failure = err
          if (!(err instanceof UpstreamAuthRejected)) throw err
          cred = attempt === 0 ? await candidate.renew() : undefined
        }
      }
    }
    if (failure) this.lastError = (failure as Error).message
    return this.learned?.tools ?? [connectToolDef(this.name)]
  }

  /** The caller's own upstream session; its token is read on every request, so a refresh applies at once. */
  private session(cred: CallerCredential): UpstreamConnection {
    const users = this.users!
    let s = users.get(cred.key)
    if (s && s.conn.status === 'down') {
      users.delete(cred.key)
      s = undefined
    }
    if (!s) {
      const entry: UserSession = { token: cred.accessToken, conn: undefined as unknown as UpstreamConnection }
      entry.conn = new UpstreamConnection({
        tenant: this.tenant,
        name: this.name,
        spec: this.spec,
        secrets: this.opts.secrets,
        logger: this.opts.logger,
        timeoutMs: this.opts.timeoutMs,
        dynamicHeaders: () => ({ authorization: `Bearer ${entry.token}` }),
        onListChanged: (kind) => {
          if (kind === 'tools' && this.learned) this.invalidate(kind)
        },
        ...(this.opts.onNotification ? { onNotification: this.opts.onNotification } : {}),
      })
      users.set(cred.key, entry)
      s = entry
    }
    s.token = cred.accessToken
    return s.conn
  }

  private async runBuiltin(
    method: string,
    params: JsonObject | undefined,
    cred: CallerCredential,
    signal: CancelSignal | undefined,
  ): Promise<JsonObject> {
    if (method !== 'tools/call')
      throw new UpstreamRpcError(-32601, `connector ${this.name} serves tools only (no ${method})`)
    const name = String(params?.name)
    const tool = this.builtin!.get(name)
    if (!tool) throw new UpstreamRpcError(-32602, `Unknown tool: ${name}`)
    const ac = new AbortController()
    const onAbort = () => ac.abort(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const args = (params?.arguments ?? {}) as Record<string, unknown>
      return (await tool.run(args, { token: cred.accessToken, signal: ac.signal })) as unknown as JsonObject
    } catch (err) {
      if (err instanceof UpstreamAuthError) throw new UpstreamAuthRejected(err.status, undefined, err.scopes)
      if (ac.signal.aborted) throw new UpstreamRpcError(-32800, 'request cancelled')
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

interface UserSession {
  token: string
  conn: UpstreamConnection
}

function toolDef(t: BuiltinTool): JsonObject {
  return {
    name: t.name,
    ...(t.title ? { title: t.title } : {}),
    description: t.description,
    inputSchema: t.inputSchema as JsonObject,
    ...(t.outputSchema ? { outputSchema: t.outputSchema as JsonObject } : {}),
    ...(t.annotations ? { annotations: t.annotations as JsonObject } : {}),
  }
}

function connectToolDef(connector: string): JsonObject {
  return {
    name: CONNECT_TOOL,
    title: `Connect your ${connector} account`,
    description:
      `Connects your own ${connector} account to this gateway. Its tools appear once one is connected; ` +
      'calling this returns the link to open.',
    inputSchema: { type: 'object', properties: {} },
  }
}
