// The least an MCP gateway does for one tools/call, with nothing of Gatehouse in it: node:http in,
// parse the JSON-RPC request, rewrite the tool name (`up__echo` → `echo`), one POST to the
// upstream on a keep-alive undici Pool, parse its answer, reply with the result. No auth, no
// sessions, no policy, no audit, no span, no metrics, no limits on sizes or time.
//
// bench/tools-call.mjs runs it as the `relay` case: on the same CPU the gateway gets, in front of
// the same upstream, it measures how close to the direct path any Node.js gateway built on
// node:http and undici could come on this machine. It is a yardstick, not a product.
//
//   node bench/lib/relay.mjs UPSTREAM_URL [port]   prints `relay listening on URL`

import { createServer } from 'node:http'
import { Pool } from 'undici'

const upstream = new URL(process.argv[2])
const pool = new Pool(upstream.origin, { connections: 128 })
const path = upstream.pathname + upstream.search
const PREFIX = 'up__'

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', async () => {
    try {
      const msg = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      const params = { ...msg.params, name: String(msg.params?.name ?? '').replace(PREFIX, '') }
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
      // A 2026-07-28 request carries its method and tool name in headers too.
      const version = req.headers['mcp-protocol-version']
      if (version) headers['mcp-protocol-version'] = version
      if (req.headers['mcp-method']) headers['mcp-method'] = req.headers['mcp-method']
      if (req.headers['mcp-name']) headers['mcp-name'] = params.name
      const up = await pool.request({
        path,
        method: 'POST',
        headers,
        body: JSON.stringify({ jsonrpc: '2.0', id: msg.id, method: msg.method, params }),
      })
      const answer = JSON.parse(await up.body.text())
      const body = JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: answer.result })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    } catch (err) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(String(err))
    }
  })
})

server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`relay listening on http://127.0.0.1:${server.address().port}/mcp\n`)
})
const stop = () => server.close(() => pool.close().then(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
