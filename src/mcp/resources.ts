import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server'
import type { Registry } from '../registry.js'
import type { Upstream } from '../upstream/connection.js'
import type { JsonObject } from '../upstream/rpc.js'
import type { Scope } from './handlers.js'

/** The literal part of a URI template before its first expression, e.g. `file:///{path}` → `file:///`. */
const templatePrefix = (t: string) => t.slice(0, t.indexOf('{') === -1 ? t.length : t.indexOf('{'))

/**
 * Aggregates resources of the scope's connectors (URIs unchanged) and routes a URI back to the
 * connector that listed it, or whose template prefix matches it best.
 */
export class ResourceRouter {
  constructor(
    private readonly registry: Registry,
    private readonly scope: Scope,
  ) {}

  async list(): Promise<JsonObject[]> {
    return (await this.collect('resources')).flatMap((x) => x.items)
  }

  async templates(): Promise<JsonObject[]> {
    return (await this.collect('resourceTemplates')).flatMap((x) => x.items)
  }

  async route(uri: string): Promise<Upstream> {
    const sel = this.registry.selection(this.scope.tenant, this.scope.server)
    if (sel.length === 1) return sel[0]!.conn
    for (const { conn, items } of await this.collect('resources'))
      if (items.some((r) => r.uri === uri)) return conn
    let best: { conn: Upstream; len: number } | undefined
    for (const { conn, items } of await this.collect('resourceTemplates')) {
      for (const t of items) {
        const p = templatePrefix(String(t.uriTemplate))
        if (p && uri.startsWith(p) && (!best || p.length > best.len)) best = { conn, len: p.length }
      }
    }
    if (best) return best.conn
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Resource not found: ${uri}`, { uri })
  }

  private async collect(
    kind: 'resources' | 'resourceTemplates',
  ): Promise<{ conn: Upstream; items: JsonObject[] }[]> {
    const sel = this.registry.selection(this.scope.tenant, this.scope.server)
    return Promise.all(
      sel.map(async ({ conn }) => ({ conn, items: await conn.list(kind).catch(() => [] as JsonObject[]) })),
    )
  }
}
