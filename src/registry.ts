import { sha256Hex } from './hash.js'
import type { Logger } from './log.js'
import { isBrokered, type ConnectorSpec, type ServerSpec, type ToolFilter } from './manifests/schema.js'
import type { ResourceRecord } from './store/types.js'
import type { Metrics } from './telemetry/metrics.js'
import { UpstreamConnection, type ListKind, type Upstream } from './upstream/connection.js'
import { exposedName, passes } from './upstream/filter.js'
import type { JsonObject } from './upstream/rpc.js'
import type { ToolCall } from './pipeline/types.js'
import type { SecretResolver } from './vault/secrets.js'

/** Where a tool lives: an upstream connection, or the gateway itself (agents). */
export interface ToolHost {
  readonly name: string
  readonly tenant: string
  /** Set for connectors (absent for the gateway's own tools). */
  readonly spec?: ConnectorSpec
  request: Upstream['request']
}

/** A tool as a caller sees it, and where it really lives. */
export interface ExposedTool {
  exposed: string
  connection: ToolHost
  /** The upstream's own name for it. */
  name: string
  def: JsonObject
  /** Set for tools the gateway runs itself (agents): the pipeline's last step calls this instead of an upstream. */
  invoke?(call: ToolCall): Promise<JsonObject>
}

export interface ExposedPrompt {
  exposed: string
  connection: Upstream
  name: string
  def: JsonObject
}

export interface ListingProblem {
  connector: string
  message: string
}

export interface ToolIndex {
  tools: Map<string, ExposedTool>
  problems: ListingProblem[]
}

export interface RegistryOptions {
  secrets: SecretResolver
  logger: Logger
  metrics: Metrics
  timeoutMs: number
  /** A tenant's aggregated lists changed: ingress tells its connected clients. */
  onListChanged(tenant: string, kind: ListKind): void
  /** Tools the gateway serves itself (agents as `agents__{name}`) for a tenant or one virtual server. */
  agentTools?(tenant: string, server: ServerSpec | undefined): Promise<ExposedTool[]>
  /**
   * Builds the upstream of a brokered connector (`transport: builtin`, or `auth: oauth2`): calls
   * carry each caller's own token (src/connections). Absent: such connectors are refused.
   */
  brokered?(r: ResourceRecord, onListChanged: (kind: ListKind) => void): Upstream
  /** Connection-level upstream notifications (e.g. resources/updated). */
  onUpstreamNotification?(
    tenant: string,
    connector: string,
    method: string,
    params: JsonObject | undefined,
  ): void
}

interface ServerEntry {
  tenant: string
  name: string
  spec: ServerSpec
}

const key = (tenant: string, name: string) => `${tenant}/${name}`

/**
 * The runtime view of applied resources: live upstream connections per tenant and the virtual
 * servers over them. Rebuilt by diff on every apply, so unchanged connectors keep their sessions.
 */
export class Registry {
  private readonly connections = new Map<string, { generation: number; conn: Upstream }>()
  private readonly servers = new Map<string, ServerEntry>()
  private readonly indexes = new Map<string, Promise<ToolIndex>>()
  /** What each index promise resolved to, so a built index is read without awaiting. */
  private readonly builtIndexes = new WeakMap<Promise<ToolIndex>, ToolIndex>()

  constructor(private readonly opts: RegistryOptions) {}

  /** Applies the full set of resources: starts new connectors, restarts changed ones, stops removed ones. */
  async load(resources: ResourceRecord[]): Promise<void> {
    const wanted = new Map<string, ResourceRecord>()
    for (const r of resources) if (r.kind === 'Connector') wanted.set(key(r.tenant, r.name), r)
    const closing: Promise<void>[] = []
    for (const [k, { generation, conn }] of this.connections) {
      const w = wanted.get(k)
      if (!w || w.generation !== generation) {
        this.connections.delete(k)
        closing.push(conn.close())
        this.opts.metrics.upstreamUp.remove({ connector: conn.name, tenant: conn.tenant })
      }
    }
    for (const [k, r] of wanted) {
      if (this.connections.has(k)) continue
      const conn = this.makeConnection(r)
      this.connections.set(k, { generation: r.generation, conn })
      void conn.ensure().catch(() => {}) // warm up; failures show in status and back off
    }
    this.servers.clear()
    for (const r of resources) {
      if (r.kind === 'Server')
        this.servers.set(key(r.tenant, r.name), {
          tenant: r.tenant,
          name: r.name,
          spec: r.spec as ServerSpec,
        })
    }
    await Promise.all(closing)
    const tenants = new Set([
      ...resources.map((r) => r.tenant),
      ...[...this.indexes.keys()].map((k) => k.split('/')[0]!),
    ])
    this.indexes.clear()
    for (const t of tenants)
      for (const kind of ['tools', 'resources', 'prompts'] as const) this.opts.onListChanged(t, kind)
  }

  connection(tenant: string, name: string): Upstream | undefined {
    return this.connections.get(key(tenant, name))?.conn
  }

  hasServer(tenant: string, name: string): boolean {
    return this.servers.has(key(tenant, name))
  }

  /** Connections visible on `/mcp` (all of the tenant's) or `/mcp/{server}`, with the server's per-connector filter. */
  selection(tenant: string, server?: string): { conn: Upstream; filter?: ToolFilter }[] {
    if (server === undefined) {
      return [...this.connections.values()]
        .map((c) => c.conn)
        .filter((c) => c.tenant === tenant)
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((conn) => ({ conn }))
    }
    const s = this.servers.get(key(tenant, server))
    if (!s) return []
    return s.spec.connectors.flatMap((ref) => {
      const name = typeof ref === 'string' ? ref : ref.name
      const conn = this.connection(tenant, name)
      if (!conn) return []
      return [{ conn, ...(typeof ref !== 'string' && ref.tools ? { filter: ref.tools } : {}) }]
    })
  }

  /** The current tool index when it is already built (the usual case): no promise to wait on. */
  toolIndexNow(tenant: string, server?: string): ToolIndex | undefined {
    const idx = this.indexes.get(`${tenant}/${server ?? ''}`)
    return idx && this.builtIndexes.get(idx)
  }

  /** The aggregated, filtered tool map of a tenant (or one virtual server), cached until a list changes. */
  async toolIndex(tenant: string, server?: string): Promise<ToolIndex> {
    const k = `${tenant}/${server ?? ''}`
    for (let attempt = 1; ; attempt++) {
      let idx = this.indexes.get(k)
      if (!idx) {
        const building = this.buildToolIndex(tenant, server)
        idx = building
        this.indexes.set(k, idx)
        idx.then(
          (built) => this.builtIndexes.set(building, built),
          () => {
            if (this.indexes.get(k) === building) this.indexes.delete(k)
          },
        )
      }
      const result = await idx
      // A list changed while this index was built: build again rather than serve a stale one.
      if (this.indexes.get(k) === idx || attempt >= 5) return result
    }
  }

  /** Prompts aggregate like tools: `{prefix}__{name}`. */
  async prompts(
    tenant: string,
    server?: string,
  ): Promise<{ prompts: Map<string, ExposedPrompt>; problems: ListingProblem[] }> {
    const prompts = new Map<string, ExposedPrompt>()
    const problems: ListingProblem[] = []
    await Promise.all(
      this.selection(tenant, server).map(async ({ conn }) => {
        try {
          for (const def of await conn.list('prompts')) {
            const name = String(def.name)
            const exposed = exposedName(prefixOf(conn.spec, conn.name), name, sha256Hex)
            if (!prompts.has(exposed))
              prompts.set(exposed, { exposed, connection: conn, name, def: { ...def, name: exposed } })
          }
        } catch (err) {
          problems.push({ connector: conn.name, message: (err as Error).message })
        }
      }),
    )
    return { prompts, problems }
  }

  /**
   * For a tool name the index does not know: the selected connector it would belong to (by
   * prefix) if that connector is not ready, so the caller hears which upstream is down instead
   * of "unknown tool".
   */
  unavailableFor(tenant: string, server: string | undefined, exposed: string): Upstream | undefined {
    for (const { conn } of this.selection(tenant, server)) {
      const prefix = prefixOf(conn.spec, conn.name)
      if (prefix && exposed.startsWith(`${prefix}__`) && conn.status !== 'ready') return conn
    }
    return undefined
  }

  status(tenant: string, name: string): { status: string; era?: string; last_error?: string } | undefined {
    const c = this.connection(tenant, name)
    if (!c) return undefined
    return {
      status: c.status,
      ...(c.era ? { era: c.era } : {}),
      ...(c.lastError ? { last_error: c.lastError } : {}),
    }
  }

  async close(): Promise<void> {
    const all = [...this.connections.values()].map((c) => c.conn.close())
    this.connections.clear()
    await Promise.allSettled(all)
  }

  /** A brokered connector's tool list may have changed (a user connected or disconnected). */
  connectionsChanged(tenant: string, connector: string): void {
    this.connection(tenant, connector)?.invalidate('tools')
  }

  private makeConnection(r: ResourceRecord): Upstream {
    const spec = r.spec as ConnectorSpec
    if (isBrokered(spec)) {
      if (!this.opts.brokered)
        throw new Error(`connector ${r.name}: per-user (brokered) connectors need the token broker`)
      return this.opts.brokered(r, (kind) => this.listChanged(r.tenant, kind))
    }
    return new UpstreamConnection({
      tenant: r.tenant,
      name: r.name,
      spec,
      secrets: this.opts.secrets,
      logger: this.opts.logger.child({ connector: r.name, tenant: r.tenant }),
      timeoutMs: this.opts.timeoutMs,
      onListChanged: (kind) => this.listChanged(r.tenant, kind),
      onNotification: (method, params) =>
        this.opts.onUpstreamNotification?.(r.tenant, r.name, method, params),
      onStatus: (s) =>
        this.opts.metrics.upstreamUp.set({ connector: r.name, tenant: r.tenant }, s === 'ready' ? 1 : 0),
    })
  }

  private listChanged(tenant: string, kind: ListKind): void {
    if (kind === 'tools')
      for (const k of [...this.indexes.keys()]) if (k.startsWith(`${tenant}/`)) this.indexes.delete(k)
    this.opts.onListChanged(tenant, kind === 'resourceTemplates' ? 'resources' : kind)
  }

  private async buildToolIndex(tenant: string, server?: string): Promise<ToolIndex> {
    const tools = new Map<string, ExposedTool>()
    const problems: ListingProblem[] = []
    const sel = this.selection(tenant, server)
    const lists = await Promise.all(
      sel.map(async ({ conn, filter }) => {
        try {
          return { conn, filter, defs: await conn.list('tools') }
        } catch (err) {
          if (conn.spec.on_error === 'fail') throw err
          problems.push({ connector: conn.name, message: (err as Error).message })
          return { conn, filter, defs: [] }
        }
      }),
    )
    const serverFilter = server ? this.servers.get(key(tenant, server))?.spec.tools : undefined
    for (const { conn, filter, defs } of lists) {
      const prefix = prefixOf(conn.spec, conn.name)
      for (const def of defs) {
        const name = String(def.name)
        const exposed = exposedName(prefix, name, sha256Hex)
        if (
          !passes(conn.spec.tools, name, exposed) ||
          !passes(filter, name, exposed) ||
          !passes(serverFilter, exposed)
        )
          continue
        const prior = tools.get(exposed)
        if (prior) {
          this.opts.logger.warn(
            { tenant, tool: exposed, kept: prior.connection.name, dropped: conn.name },
            'tool name collision; set a prefix',
          )
          problems.push({
            connector: conn.name,
            message: `tool ${exposed} collides with connector ${prior.connection.name}; it is not exposed`,
          })
          continue
        }
        tools.set(exposed, { exposed, connection: conn, name, def: { ...def, name: exposed } })
      }
    }
    if (this.opts.agentTools) {
      const spec = server ? this.servers.get(key(tenant, server))?.spec : undefined
      try {
        for (const t of await this.opts.agentTools(tenant, spec)) tools.set(t.exposed, t)
      } catch (err) {
        problems.push({ connector: 'agents', message: (err as Error).message })
      }
    }
    return { tools, problems }
  }
}

export function prefixOf(spec: ConnectorSpec, name: string): string {
  return spec.prefix ?? name
}
