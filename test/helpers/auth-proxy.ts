import { createServer, request, type Server } from 'node:http'

/**
 * A transparent loopback proxy that adds an Authorization header, for clients that cannot send
 * one (the MCP conformance runner). Host, Origin and every other header pass unchanged.
 */
export async function startAuthProxy(
  target: string,
  authorization: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const t = new URL(target)
  const server: Server = createServer((req, res) => {
    const up = request(
      {
        host: t.hostname,
        port: t.port,
        path: req.url,
        method: req.method,
        headers: { ...req.headers, authorization },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      },
    )
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    res.on('close', () => up.destroy())
    req.pipe(up)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}
