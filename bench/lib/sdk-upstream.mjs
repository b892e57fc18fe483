// A typical MCP server built with the official TypeScript SDK (v2), used as the upstream in
// benchmarks when `--upstream sdk` is given: what most MCP servers written today look like.
//
// One `echo` tool (input `{ text: string }`, zod-validated by the SDK; returns a text content with
// the text), registered on an `McpServer` from `@modelcontextprotocol/server`, served by that
// package's `createMcpHandler` (a fresh server instance per request, as the SDK does) and mounted
// on plain `node:http` with `toNodeHandler` from `@modelcontextprotocol/node`. Nothing is tuned:
// default options, default response mode (`auto`: JSON unless the tool emits something first).
//
// Eras:
//   2026-07-28  the SDK's stateless modern path (`server/discover`, `_meta` envelope, `mcp-method`).
//   2025-11-25  the SDK's default stateless legacy fallback: `initialize` and every later request
//               are answered by a fresh instance, with **no** `mcp-session-id` (2025 sessionless
//               serving, which the 2025 spec allows); GET and DELETE answer 405.
//
// Besides MCP, `GET /stats` returns request counts by JSON-RPC method, like echo-upstream.mjs: read
// from the `mcp-method` header when present (every 2026-07-28 request carries it); for a POST
// without that header (2025 era) the body is read here and handed to the SDK as `parsedBody`, so the
// modern path is served exactly as the SDK serves it. `toolCalls` counts calls that reached the
// tool's handler.
//
// Run standalone: `node bench/lib/sdk-upstream.mjs [port]` prints `sdk upstream listening on URL`.

import { createServer } from 'node:http'
import { pathToFileURL } from 'node:url'
import { listenUpstream } from './listen.mjs'
import { toNodeHandler } from '@modelcontextprotocol/node'
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server'
import { z } from 'zod'

const SERVER_INFO = { name: 'bench-sdk-upstream', version: '1.0.0' }

/**
 * Starts the SDK upstream. Resolves to `{ url, port, server, stats, close() }` where `url` is the
 * MCP endpoint (`http://127.0.0.1:PORT/mcp`) and `stats` counts requests by method.
 */
export function startSdkUpstream({ port = 0, host = '127.0.0.1' } = {}) {
  const stats = { requests: 0, byMethod: Object.create(null), errors: 0, toolCalls: 0 }
  const count = (method) => (stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1)

  // The server definition, as an SDK user writes it; createMcpHandler calls this per request.
  const factory = () => {
    const server = new McpServer(SERVER_INFO)
    server.registerTool(
      'echo',
      {
        description: 'Echoes arguments.text back as a text content.',
        inputSchema: z.object({ text: z.string() }),
      },
      async ({ text }) => {
        stats.toolCalls++
        return { content: [{ type: 'text', text }] }
      },
    )
    return server
  }

  const mcp = createMcpHandler(factory, {
    onerror: () => {
      stats.errors++
    },
  })
  const handle = toNodeHandler(mcp, {
    onerror: () => {
      stats.errors++
    },
  })

  const server = createServer((req, res) => {
    stats.requests++
    if (req.method === 'GET' && req.url === '/stats') {
      const body = JSON.stringify(stats)
      res
        .writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        .end(body)
      return
    }
    const fail = () => {
      stats.errors++
      if (!res.headersSent) res.writeHead(500, { 'content-length': '0' })
      res.end()
    }
    const header = req.headers['mcp-method']
    if (req.method !== 'POST' || typeof header === 'string') {
      if (req.method === 'POST') count(header)
      handle(req, res).catch(fail)
      return
    }
    // 2025-era POST (no mcp-method header): read the method from the body, then let the SDK serve it.
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      let body
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        stats.errors++
        const err = '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
        res.writeHead(400, { 'content-type': 'application/json', 'content-length': err.length }).end(err)
        return
      }
      for (const m of Array.isArray(body) ? body : [body]) count(m?.method ?? '(response)')
      handle(req, res, body).catch(fail)
    })
  })
  server.keepAliveTimeout = 60_000

  return listenUpstream(server, { port, host, stats, beforeClose: () => mcp.close() })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const up = await startSdkUpstream({ port: Number(process.argv[2] ?? 0) })
  process.stdout.write(`sdk upstream listening on ${up.url}\n`)
  const stop = () => up.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
