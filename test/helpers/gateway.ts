import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { startGateway, type GatewayHandle } from '../../src/gateway.js'
import type { ConfigInput } from '../../src/config.js'
import type { Logger } from '../../src/log.js'

export const ADMIN_KEY = 'gk_test_bootstrap_admin_key_0123456789'

export type Era = 'legacy' | 'modern'

export interface TestGateway {
  url: string
  key: string
  gw: GatewayHandle
  dataDir: string
  /** Calls the REST API; returns status and parsed JSON body. */
  api(
    method: string,
    path: string,
    body?: unknown,
    key?: string,
  ): Promise<{ status: number; body: any; headers: Headers }>
  /** Applies YAML/JSON manifests through the admin API; throws on non-2xx. */
  apply(text: string, key?: string): Promise<any>
  /** A connected v2 MCP client in the given era. */
  client(opts?: {
    era?: Era
    path?: string
    key?: string
    capabilities?: Record<string, unknown>
  }): Promise<Client>
  close(): Promise<void>
}

/** Starts a gateway in this process on a free loopback port with a temp data dir. */
export async function startTestGateway(
  opts: { manifests?: string; config?: ConfigInput; logger?: Logger } = {},
): Promise<TestGateway> {
  // A given data directory is another gateway's (a restart, a second process): left in place on close.
  const given = opts.config?.dataDir
  const dataDir = given ?? mkdtempSync(join(tmpdir(), 'gh-test-'))
  const gw = await startGateway({
    ...(opts.logger ? { logger: opts.logger } : {}),
    config: {
      port: 0,
      dataDir,
      adminKey: ADMIN_KEY,
      logLevel: 'silent',
      auditFlushMs: 20,
      // Tests send many bad credentials from one address on purpose; test/auth sets its own limit.
      authFailureLimit: { burst: 1_000_000, perMinute: 1_000_000 },
      ...opts.config,
    },
  })
  const clients: Client[] = []
  const api: TestGateway['api'] = async (method, path, body, key = ADMIN_KEY) => {
    const res = await fetch(gw.url + path, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined
          ? { 'content-type': typeof body === 'string' ? 'application/yaml' : 'application/json' }
          : {}),
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, headers: res.headers }
  }
  const t: TestGateway = {
    url: gw.url,
    key: ADMIN_KEY,
    gw,
    dataDir,
    api,
    async apply(text, key) {
      const r = await api('POST', '/v1/admin/manifests', text, key)
      if (r.status !== 200) throw new Error(`apply failed ${r.status}: ${JSON.stringify(r.body)}`)
      return r.body
    },
    async client({ era = 'legacy', path = '/mcp', key = ADMIN_KEY, capabilities = {} } = {}) {
      const c = new Client(
        { name: 'test-client', version: '1.0.0' },
        { capabilities, versionNegotiation: { mode: era === 'modern' ? { pin: '2026-07-28' } : 'legacy' } },
      )
      await c.connect(
        new StreamableHTTPClientTransport(new URL(gw.url + path), {
          requestInit: { headers: { authorization: `Bearer ${key}` } },
        }),
      )
      clients.push(c)
      return c
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()))
      await gw.close()
      if (!given) rmSync(dataDir, { recursive: true, force: true })
    },
  }
  if (opts.manifests) await t.apply(opts.manifests)
  return t
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? []
  return content.map((c) => c.text ?? '').join('')
}

/** A Connector manifest for an HTTP upstream; `spec` adds fields (YAML flow mapping entries). */
export function httpConnector(name: string, url: string, spec = ''): string {
  return `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: ${name} }
spec: { transport: http, url: "${url}"${spec ? `, ${spec}` : ''} }
`
}

/** Headers of an MCP POST with a key (default: the bootstrap admin key), plus any extra ones. */
export function mcpHeaders(extra: Record<string, string> = {}, key = ADMIN_KEY): Record<string, string> {
  return {
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...extra,
  }
}
