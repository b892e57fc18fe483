import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { createContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import { McpIngress } from '../../src/mcp/ingress.js'
import { masterKeyFrom } from '../../src/vault/master-key.js'

/**
 * 2025-era sessions kept in one process are limited; reaching a limit must cost the caller who
 * holds the most, never another tenant's sessions.
 */
describe('MCP session limits', () => {
  let server: Server | undefined
  let ingress: McpIngress | undefined
  afterEach(async () => {
    await ingress?.close()
    server?.closeAllConnections()
    await new Promise((r) => server?.close(r))
  })

  /** An ingress on loopback; the `x-who` header ("tenant/principal") says who calls. */
  async function start(opts: { maxSessions: number; maxSessionsPerOwner?: number }) {
    ingress = new McpIngress({
      registry: {} as never,
      logger: createLogger('silent'),
      callTool: async () => ({}),
      maxBodyBytes: 1 << 20,
      masterKeys: [masterKeyFrom(randomBytes(32))],
      ...opts,
    })
    server = createServer((req, res) => {
      const [tenant, id] = String(req.headers['x-who']).split('/')
      const ctx = createContext({ tenant: tenant!, principal: { kind: 'user', id: id! }, roles: ['member'] })
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => void ingress!.handle(req, res, ctx, { tenant: tenant! }, Buffer.concat(chunks)))
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const url = `http://127.0.0.1:${(server!.address() as { port: number }).port}/mcp`
    const post = (who: string, body: object, sid?: string) =>
      fetch(url, {
        method: 'POST',
        headers: {
          'x-who': who,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } : {}),
        },
        body: JSON.stringify(body),
      })
    const open = async (who: string) => {
      const res = await post(who, {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      })
      expect(res.status).toBe(200)
      await res.body?.cancel()
      return res.headers.get('mcp-session-id')!
    }
    const alive = async (who: string, sid: string) => {
      const res = await post(who, { jsonrpc: '2.0', id: 2, method: 'ping' }, sid)
      await res.body?.cancel()
      return res.status !== 404
    }
    return { open, alive }
  }

  it('a caller filling the process evicts its own sessions, not another tenant’s', async () => {
    const { open, alive } = await start({ maxSessions: 10, maxSessionsPerOwner: 10 })
    const victim = await open('acme/alice')
    const flood: string[] = []
    for (let i = 0; i < 25; i++) flood.push(await open('evil/mallory'))
    expect(await alive('acme/alice', victim)).toBe(true)
    expect(ingress!.sessionCount).toBeLessThanOrEqual(10)
    expect(await alive('evil/mallory', flood.at(-1)!)).toBe(true)
    expect(await alive('evil/mallory', flood[0]!)).toBe(false)
  })

  it('one principal holds at most maxSessionsPerOwner; its oldest goes first', async () => {
    const { open, alive } = await start({ maxSessions: 100, maxSessionsPerOwner: 3 })
    const other = await open('acme/bob')
    const mine: string[] = []
    for (let i = 0; i < 5; i++) mine.push(await open('acme/carol'))
    expect(ingress!.sessionCount).toBe(4)
    expect(await Promise.all(mine.map((s) => alive('acme/carol', s)))).toEqual([
      false,
      false,
      true,
      true,
      true,
    ])
    expect(await alive('acme/bob', other)).toBe(true)
  })
})
