import { GatewayError } from '../../errors.js'
import type { McpIngress } from '../../mcp/ingress.js'
import type { Registry } from '../../registry.js'
import type { Method, Route, RouteRequest } from '../router.js'

/** `/mcp` (everything the tenant may use) and `/mcp/{server}` (one virtual server), POST/GET/DELETE. */
export function mcpRoutes({ ingress, registry }: { ingress: McpIngress; registry: Registry }): Route[] {
  const handle = (withServer: boolean) => async (r: RouteRequest) => {
    const server = withServer ? r.params.server : undefined
    if (server !== undefined && !registry.hasServer(r.ctx.tenant, server)) {
      throw new GatewayError('not_found', `no MCP server ${server}`)
    }
    const body = r.req.method === 'POST' ? await r.body() : undefined
    await ingress.handle(
      r.req,
      r.res,
      r.ctx,
      { tenant: r.ctx.tenant, ...(server !== undefined ? { server } : {}) },
      body,
    )
    return undefined
  }
  const methods: Method[] = ['POST', 'GET', 'DELETE']
  return methods.flatMap((method) => [
    {
      method,
      path: '/mcp',
      auth: 'required',
      summary: `MCP Streamable HTTP (${method})`,
      handler: handle(false),
    } satisfies Route,
    {
      method,
      path: '/mcp/{server}',
      auth: 'required',
      summary: `MCP virtual server (${method})`,
      handler: handle(true),
    } satisfies Route,
  ])
}
