import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'

/** One call the upstream executed: which tool, with which arguments and `_meta`. */
export interface SeenCall {
  tool: string
  args: Record<string, unknown>
  meta: Record<string, unknown> | null
}

export interface PolicyUpstream {
  url: string
  /** Every call executed, in order (survives gateway restarts: it lives in the test process). */
  calls: SeenCall[]
  close(): Promise<void>
}

const TEXT = (text: string) => ({ content: [{ type: 'text' as const, text }] })

/**
 * A 2025-era MCP server (v1 SDK, sessions) with tools for the policy tests: deploy (a side effect
 * to count), echo (returns what it got), lookup (returns PII), delete_repo, get_issue.
 */
export async function startPolicyUpstream(): Promise<PolicyUpstream> {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js')
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js')
  const { isInitializeRequest } = await import('@modelcontextprotocol/sdk/types.js')
  const calls: SeenCall[] = []
  const build = () => {
    const s = new McpServer({ name: 'policy-upstream', version: '1.0.0' })
    const record = (tool: string, args: Record<string, unknown>, extra: { _meta?: unknown }) =>
      calls.push({ tool, args, meta: (extra._meta as Record<string, unknown> | undefined) ?? null })
    s.registerTool(
      'deploy',
      {
        description: 'Deploys a service',
        inputSchema: { service: z.string(), env: z.enum(['staging', 'prod']) },
      },
      async (args, extra) => {
        record('deploy', args, extra)
        return TEXT(`deployed ${args.service} to ${args.env}`)
      },
    )
    s.registerTool(
      'echo',
      { description: 'Echoes text', inputSchema: { text: z.string() } },
      async (args, extra) => {
        record('echo', args, extra)
        return TEXT(args.text)
      },
    )
    s.registerTool(
      'lookup',
      { description: 'Returns a customer record', inputSchema: {} },
      async (args, extra) => {
        record('lookup', args, extra)
        return TEXT('customer jane.doe@example.com, card 4111 1111 1111 1111, phone +44 20 7946 0958')
      },
    )
    s.registerTool(
      'delete_repo',
      { description: 'Deletes a repository', inputSchema: { name: z.string() } },
      async (args, extra) => {
        record('delete_repo', args, extra)
        return TEXT(`deleted ${args.name}`)
      },
    )
    s.registerTool(
      'get_issue',
      { description: 'Reads an issue', inputSchema: { n: z.number() } },
      async (args, extra) => {
        record('get_issue', args, extra)
        return TEXT(`issue ${args.n}`)
      },
    )
    return s
  }
  const sessions = new Map<string, InstanceType<typeof StreamableHTTPServerTransport>>()
  const server = http.createServer((req, res) => {
    void (async () => {
      let body: unknown
      if (req.method === 'POST') {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      }
      const sid = req.headers['mcp-session-id'] as string | undefined
      let t = sid ? sessions.get(sid) : undefined
      if (!t) {
        if (sid || !isInitializeRequest(body)) {
          res.writeHead(sid ? 404 : 400, { 'content-type': 'application/json' })
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              error: { code: -32001, message: 'Session not found' },
              id: null,
            }),
          )
          return
        }
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void sessions.set(id, transport),
        })
        t = transport
        await build().connect(transport)
      }
      await t.handleRequest(req, res, body)
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    calls,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
