import { PRM_PATH, type ResourceServer } from '../../auth/resource.js'
import type { Route } from '../router.js'

/**
 * RFC 9728 protected-resource metadata: one document for the gateway's base resource and one
 * per MCP endpoint (MCP authorization, 2025-11-25 and 2026-07-28). Public: a client reads it
 * before it has a token. `/mcp/{server}` answers for any name, so the metadata says nothing
 * about which virtual servers exist.
 */
export function oauthMetadataRoutes(resource: ResourceServer): Route[] {
  const headers = { 'cache-control': 'public, max-age=300' }
  return [
    {
      method: 'GET',
      path: PRM_PATH,
      auth: 'none',
      summary: 'RFC 9728 metadata of the gateway (base resource)',
      handler: async () => ({ body: resource.metadata(''), headers }),
    },
    {
      method: 'GET',
      path: `${PRM_PATH}/mcp`,
      auth: 'none',
      summary: 'RFC 9728 metadata of /mcp',
      handler: async () => ({ body: resource.metadata('/mcp'), headers }),
    },
    {
      method: 'GET',
      path: `${PRM_PATH}/mcp/{server}`,
      auth: 'none',
      summary: 'RFC 9728 metadata of /mcp/{server}',
      handler: async (r) => ({
        body: resource.metadata(`/mcp/${encodeURIComponent(r.params.server!)}`),
        headers,
      }),
    },
  ]
}
