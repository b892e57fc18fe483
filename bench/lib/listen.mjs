/**
 * Starts a bench upstream's HTTP server on host:port and resolves its handle:
 * { url, port, server, stats, close() }; `beforeClose` runs first on close (e.g. an SDK handler's).
 */
export function listenUpstream(server, { port, host, stats, beforeClose = async () => {} }) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const addr = server.address()
      resolve({
        url: `http://${host}:${addr.port}/mcp`,
        port: addr.port,
        server,
        stats,
        close: async () => {
          await beforeClose()
          await new Promise((r) => {
            server.closeAllConnections?.()
            server.close(() => r())
          })
        },
      })
    })
  })
}
