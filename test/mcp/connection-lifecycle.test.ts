import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { ConnectorSpecSchema } from '../../src/manifests/schema.js'
import {
  UpstreamConnection,
  type ConnectionStatus,
  type ListKind,
  type UpstreamConnectionOptions,
} from '../../src/upstream/connection.js'
import { LEGACY, MODERN } from '../../src/upstream/http.js'
import { UpstreamAuthRejected, UpstreamUnavailableError } from '../../src/upstream/rpc.js'
import { SecretResolver } from '../../src/vault/secrets.js'
import { eventually } from '../helpers/gateway.js'
import { isAlive } from '../helpers/process.js'
// @ts-expect-error plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'

/**
 * A 2025-11-25 stdio upstream that takes INIT_DELAY_MS to answer `initialize` and appends its pid
 * to PID_FILE, so a test can count the processes a connection spawned.
 */
const SLOW_INIT_UPSTREAM = `
const fs = require('node:fs')
fs.appendFileSync(process.env.PID_FILE, process.pid + '\\n')
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
const rl = require('node:readline').createInterface({ input: process.stdin })
rl.on('close', () => process.exit(0))
rl.on('line', (line) => {
  const m = JSON.parse(line)
  if (m.id === undefined) return
  if (m.method === 'initialize') {
    const result = {
      protocolVersion: '2025-11-25',
      capabilities: { tools: { listChanged: true } },
      serverInfo: { name: 'slow-init', version: '1.0.0' },
    }
    setTimeout(() => send({ jsonrpc: '2.0', id: m.id, result }), Number(process.env.INIT_DELAY_MS))
  } else if (m.method === 'tools/list') send({ jsonrpc: '2.0', id: m.id, result: { tools: [] } })
  else send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } })
})
`

const secrets = new SecretResolver({ masterKeys: [], env: {} })
const logger = createLogger('silent')

function connection(
  spec: Record<string, unknown>,
  opts: Partial<UpstreamConnectionOptions> = {},
): UpstreamConnection {
  return new UpstreamConnection({
    tenant: 't1',
    name: 'up',
    spec: ConnectorSpecSchema.parse(spec),
    secrets,
    logger,
    timeoutMs: 5000,
    onListChanged: () => {},
    ...opts,
  })
}

describe('UpstreamConnection closed while connecting', () => {
  let dir: string
  const started: number[] = []
  const pidsIn = (file: string): number[] => {
    const pids = readFileSync(file, { encoding: 'utf8', flag: 'a+' }).split('\n').filter(Boolean).map(Number)
    for (const p of pids) if (!started.includes(p)) started.push(p)
    return pids
  }
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gh-conn-'))
  })
  afterEach(() => {
    // A failing run must not leave children behind.
    for (const p of started.splice(0)) if (isAlive(p)) process.kill(p, 'SIGKILL')
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('stays stopped, announces nothing, and leaves no upstream process behind', async () => {
    const pidFile = join(dir, 'pids')
    const changed: ListKind[] = []
    const statuses: ConnectionStatus[] = []
    const conn = connection(
      {
        transport: 'stdio',
        command: process.execPath,
        args: ['-e', SLOW_INIT_UPSTREAM],
        env: { PID_FILE: pidFile, INIT_DELAY_MS: '200' },
      },
      { onListChanged: (k) => changed.push(k), onStatus: (s) => statuses.push(s) },
    )
    const connecting = conn.ensure().catch((err: unknown) => err)
    await conn.close()

    expect(conn.status).toBe('stopped')
    expect(await connecting).toBeInstanceOf(UpstreamUnavailableError)
    await expect(conn.request('tools/list', undefined, {})).rejects.toThrow(/connector up is stopped/)
    await expect(conn.ensure()).rejects.toThrow(/connector up is stopped/)
    expect(conn.era).toBeUndefined()
    expect(changed).toEqual([])
    expect(statuses).toEqual(['connecting', 'stopped'])
    const pids = pidsIn(pidFile)
    expect(pids).toHaveLength(1)
    await expect.poll(() => pids.filter(isAlive), { timeout: 2000 }).toEqual([])
  })
})

type Answer = (res: ServerResponse, id: unknown) => void

const rpc = (res: ServerResponse, status: number, msg: Record<string, unknown>, headers = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(msg))

/** What a 2026-07-28 server answers to `server/discover`. */
const DISCOVERED: Answer = (res, id) =>
  rpc(res, 200, {
    jsonrpc: '2.0',
    id,
    result: {
      supportedVersions: [MODERN],
      capabilities: { tools: {} },
      serverInfo: { name: 'discover-fx', version: '1.0.0' },
    },
  })

/**
 * A dual-era HTTP upstream on loopback: `server/discover` is answered by the next entry of
 * `discover` (then as a 2026-07-28 server), `initialize` opens a 2025-11-25 session. `methods`
 * records every JSON-RPC method it was sent.
 */
describe('UpstreamConnection era discovery (protocol: auto)', () => {
  let server: Server
  let url: string
  let discover: Answer[] = []
  let methods: string[] = []
  const onPost = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const msg = JSON.parse(body) as { id?: unknown; method: string }
    methods.push(msg.method)
    if (msg.method === 'server/discover') return (discover.shift() ?? DISCOVERED)(res, msg.id)
    if (msg.method === 'initialize') {
      const result = { protocolVersion: LEGACY, capabilities: { tools: {} }, serverInfo: { name: 'fx' } }
      return rpc(res, 200, { jsonrpc: '2.0', id: msg.id, result }, { 'mcp-session-id': 's1' })
    }
    if (msg.id === undefined) return res.writeHead(202).end()
    if (msg.method === 'tools/list')
      return rpc(res, 200, { jsonrpc: '2.0', id: msg.id, result: { tools: [] } })
    rpc(res, 404, { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } })
  }
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.method !== 'POST') return res.writeHead(405).end()
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString('utf8')))
      req.on('end', () => onPost(req, res, body))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`
  })
  afterEach(() => {
    discover = []
    methods = []
    server.closeAllConnections()
  })
  afterAll(async () => new Promise<void>((r) => server.close(() => r())))

  const count = (method: string) => methods.filter((m) => m === method).length

  it('a 401 to server/discover fails that connect, and the next connect discovers again', async () => {
    discover = [
      (res) =>
        res
          .writeHead(401, { 'www-authenticate': 'Bearer realm="fx"', 'content-type': 'application/json' })
          .end('{"error":"invalid_token"}'),
    ]
    const conn = connection({ transport: 'http', url, protocol: 'auto' })
    await expect(conn.ensure()).rejects.toBeInstanceOf(UpstreamAuthRejected)
    expect(conn.status).toBe('down')
    // The backoff (250 ms) runs out; the restart timer or this ensure() connects again.
    await eventually(() => conn.ensure().catch(() => undefined), 5000)
    expect(conn.era).toBe(MODERN)
    expect(count('server/discover')).toBe(2)
    expect(count('initialize')).toBe(0)
    await expect(conn.request('tools/list', undefined, {})).resolves.toEqual({ tools: [] })
    await conn.close()
  })

  it.each<[string, Answer]>([
    ['an HTTP 429', (res) => res.writeHead(429, { 'retry-after': '0' }).end('slow down')],
    ['no answer in time', () => {}],
  ])('%s to server/discover does not make the connector 2025-era for good', async (_name, first) => {
    discover = [first]
    const conn = connection({ transport: 'http', url, protocol: 'auto', timeout_ms: 300 })
    await expect(conn.ensure()).rejects.toMatchObject({ message: /HTTP 429|did not answer within 300 ms/ })
    await eventually(() => conn.ensure().catch(() => undefined), 5000)
    expect(conn.era).toBe(MODERN)
    expect(count('server/discover')).toBe(2)
    expect(count('initialize')).toBe(0)
    await conn.close()
  })

  it.each<[string, Answer]>([
    ['a bare HTTP 404', (res) => res.writeHead(404).end()],
    ['a bare HTTP 405', (res) => res.writeHead(405).end()],
    [
      'JSON-RPC method not found',
      (res, id) =>
        rpc(res, 200, { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } }),
    ],
    [
      "a 2025 SDK's 400 (no session)",
      (res) =>
        rpc(res, 400, {
          jsonrpc: '2.0',
          id: null,
          error: { code: -32000, message: 'Bad Request: Server not initialized' },
        }),
    ],
  ])('falls back to 2025-11-25 after %s', async (_name, first) => {
    discover = [first]
    const conn = connection({ transport: 'http', url, protocol: 'auto' })
    await conn.ensure()
    expect(conn.era).toBe(LEGACY)
    await conn.close()
    expect(count('server/discover')).toBe(1)
    expect(count('initialize')).toBe(1)
  })

  it('falls back to 2025-11-25 sessions for the v1 SDK server', async () => {
    const legacy = (await startUpstream({ era: '2025', name: 'legacy-up' })) as {
      url: string
      close(): Promise<void>
    }
    try {
      const conn = connection({ transport: 'http', url: legacy.url, protocol: 'auto' })
      await conn.ensure()
      expect(conn.era).toBe(LEGACY)
      await conn.close()
    } finally {
      await legacy.close()
    }
  })
})
