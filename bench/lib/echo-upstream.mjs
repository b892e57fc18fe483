// A deliberately minimal MCP server over plain node:http, used as the upstream in benchmarks.
//
// It answers both protocol eras with application/json (never SSE) and does as little work per
// request as possible, so that a benchmark through the gateway measures the gateway and not the
// upstream. Methods: initialize (2025-11-25: issues an mcp-session-id), notifications/* (202),
// ping, server/discover (2026-07-28), tools/list (one `echo` tool), tools/call (echoes
// arguments.text). GET (the 2025 listen stream) answers 405; DELETE answers 200. `GET /stats`
// (not MCP) returns request counts by method.
//
// Run standalone: `node bench/lib/echo-upstream.mjs [port]` prints `echo upstream listening on URL`.

import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import { pathToFileURL } from 'node:url'
import { listenUpstream } from './listen.mjs'

const LEGACY = '2025-11-25'
const MODERN = '2026-07-28'

const ECHO_TOOL = {
  name: 'echo',
  description: 'Echoes arguments.text back as a text content.',
  inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
}

const SERVER_INFO = { name: 'bench-echo-upstream', version: '1.0.0' }

function result(id, value) {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${JSON.stringify(value)}}`
}

function error(id, code, message) {
  return JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error: { code, message } })
}

/**
 * Starts the echo upstream. Resolves to `{ url, port, server, stats, close() }` where `url` is the
 * MCP endpoint (`http://127.0.0.1:PORT/mcp`) and `stats` counts requests by method.
 */
export function startEchoUpstream({ port = 0, host = '127.0.0.1' } = {}) {
  const stats = { requests: 0, byMethod: Object.create(null), errors: 0 }

  const server = createServer((req, res) => {
    stats.requests++
    if (req.method === 'GET' && req.url === '/stats') {
      // Not MCP: lets the bench see how many requests of each method reached the upstream.
      return reply(res, 200, JSON.stringify(stats))
    }
    if (req.method === 'GET') {
      // No standalone SSE stream: the 2025 spec lets a server answer 405.
      res.writeHead(405, { allow: 'POST, DELETE', 'content-length': '0' }).end()
      return
    }
    if (req.method === 'DELETE') {
      res.writeHead(200, { 'content-length': '0' }).end()
      return
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST, GET, DELETE', 'content-length': '0' }).end()
      return
    }
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      let msg
      try {
        msg = JSON.parse(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
      } catch {
        stats.errors++
        return reply(res, 400, error(null, -32700, 'Parse error'))
      }
      const method = msg?.method
      stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1
      if (msg.id === undefined || msg.id === null) {
        // Notifications and responses to server requests: accepted, nothing to say.
        res.writeHead(202, { 'content-length': '0' }).end()
        return
      }
      const id = msg.id
      switch (method) {
        case 'tools/call': {
          const p = msg.params
          if (!p || p.name !== 'echo') {
            stats.errors++
            return reply(res, 200, error(id, -32602, `Unknown tool: ${p?.name}`))
          }
          const text = String(p.arguments?.text ?? '')
          return reply(res, 200, result(id, { content: [{ type: 'text', text }] }))
        }
        case 'initialize':
          return reply(
            res,
            200,
            result(id, { protocolVersion: LEGACY, capabilities: { tools: {} }, serverInfo: SERVER_INFO }),
            { 'mcp-session-id': randomUUID() },
          )
        case 'server/discover':
          return reply(
            res,
            200,
            result(id, {
              supportedVersions: [MODERN],
              capabilities: { tools: {} },
              serverInfo: SERVER_INFO,
              _meta: { 'io.modelcontextprotocol/serverInfo': SERVER_INFO },
            }),
          )
        case 'tools/list':
          return reply(res, 200, result(id, { tools: [ECHO_TOOL] }))
        case 'ping':
          return reply(res, 200, result(id, {}))
        default:
          stats.errors++
          return reply(res, 200, error(id, -32601, `Method not found: ${method}`))
      }
    })
  })
  server.keepAliveTimeout = 60_000

  return listenUpstream(server, { port, host, stats })
}

function reply(res, status, body, extra) {
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  if (extra) Object.assign(headers, extra)
  res.writeHead(status, headers).end(body)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const up = await startEchoUpstream({ port: Number(process.argv[2] ?? 0) })
  process.stdout.write(`echo upstream listening on ${up.url}\n`)
  const stop = () => up.close().then(() => process.exit(0))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
