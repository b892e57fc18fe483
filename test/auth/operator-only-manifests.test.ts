import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadMasterKey } from '../../src/vault/master-key.js'
import { seal } from '../../src/vault/seal.js'
import { ADMIN_KEY, eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'

/**
 * `{ env: NAME }` resolves from the gateway's own environment and a stdio connector runs a command
 * on the gateway's host: both reach past the tenant, so only operators may write them. A tenant
 * admin who could would read the operator key out of the environment (or off the disk) and so
 * reach every tenant.
 */

// The gateway process's environment holds operator secrets; the test process is the gateway's.
const CANARY = 'canary-secret-of-the-gateway-environment-0123456789'
process.env.GATEHOUSE_ADMIN_KEY = ADMIN_KEY
process.env.GH_TEST_HOST_CANARY = CANARY

/** A loopback "upstream" that records the headers of every request and answers 500. */
async function recorder(): Promise<{ url: string; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = []
  const server: Server = createServer((req, res) => {
    seen.push(req.headers)
    req.resume()
    res.statusCode = 500
    res.end()
  })
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: () => new Promise<void>((res) => server.close(() => res())),
  }
}

const envConnector = (name: string, url: string, tenant = 'acme') => `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: ${name}, tenant: ${tenant} }
spec:
  transport: http
  url: "${url}"
  headers:
    x-a: { env: GATEHOUSE_ADMIN_KEY }
    x-b: { env: GH_TEST_HOST_CANARY }
    x-plain: visible
`

// as a tenant admin's this would be `cat DATA/admin.key`; the operator's run below must stay harmless
const STDIO = `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: hostcmd, tenant: acme }
spec: { transport: stdio, command: "${process.execPath}", args: ["-e", "process.exit(0)"] }
`

describe('env references and stdio connectors need an operator key', () => {
  let gw: TestGateway
  let up: Awaited<ReturnType<typeof recorder>>
  let acmeAdmin: string

  beforeAll(async () => {
    gw = await startTestGateway()
    up = await recorder()
    expect((await gw.api('POST', '/v1/admin/tenants', { name: 'acme' })).status).toBe(201)
    const k = await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'admin' })
    expect(k.status).toBe(201)
    acmeAdmin = k.body.key
  })
  afterAll(async () => {
    await gw?.close()
    await up?.close()
  })

  /** Lists acme's tools (which connects every acme connector) and returns the connector names the admin API shows. */
  async function acmeConnectors(): Promise<string[]> {
    const c = await gw.client({ key: acmeAdmin })
    await c.listTools()
    await c.close()
    const r = await gw.api('GET', '/v1/admin/connectors', undefined, acmeAdmin)
    return r.body.items.map((c: { name: string }) => c.name)
  }

  it('a tenant admin applying { env: … } headers gets 400 listing each one by path, in dry runs too, and the upstream receives nothing', async () => {
    const doc = envConnector('exfil', up.url)
    for (const path of ['/v1/admin/manifests', '/v1/admin/manifests?dry_run=true']) {
      const r = await gw.api('POST', path, doc, acmeAdmin)
      expect(r.status, `${path} ${JSON.stringify(r.body)}`).toBe(400)
      expect(r.body.error.code).toBe('invalid_manifest')
      const env = expect.stringMatching(/env references need an operator key.*gatehouse seal/)
      expect(r.body.error.details).toEqual([
        expect.objectContaining({ path: 'spec.headers.x-a', message: env }),
        expect.objectContaining({ path: 'spec.headers.x-b', message: env }),
      ])
    }
    // an env ref anywhere in a batch refuses the whole batch
    const batch = await gw.api(
      'POST',
      '/v1/admin/manifests',
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fine }
spec: { transport: http, url: "${up.url}" }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: tok }
spec: { transport: http, url: "${up.url}", auth: { type: static, token: { env: GATEHOUSE_ADMIN_KEY } } }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: remote }
spec: { type: a2a, url: "${up.url}", headers: { authorization: { env: GATEHOUSE_ADMIN_KEY } } }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: model }
spec: { type: llm, base_url: "${up.url}", model: m, api_key: { env: GATEHOUSE_ADMIN_KEY } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: oauthy }
spec:
  transport: http
  url: "${up.url}"
  auth:
    type: oauth2
    authorization_endpoint: "${up.url}/authorize"
    token_endpoint: "${up.url}/token"
    client_id: c
    client_secret: { env: GATEHOUSE_ADMIN_KEY }
`,
      acmeAdmin,
    )
    expect(batch.status).toBe(400)
    expect(batch.body.error.details.map((d: { document: string; path: string }) => d.path)).toEqual([
      'spec.auth.token',
      'spec.headers.authorization',
      'spec.api_key',
      'spec.auth.client_secret',
    ])
    expect(await acmeConnectors()).toEqual([])
    await new Promise((res) => setTimeout(res, 200))
    expect(up.seen).toEqual([])
  })

  it('a tenant admin cannot apply a stdio connector', async () => {
    for (const path of ['/v1/admin/manifests', '/v1/admin/manifests?dry_run=true']) {
      const r = await gw.api('POST', path, STDIO, acmeAdmin)
      expect(r.status, `${path} ${JSON.stringify(r.body)}`).toBe(400)
      expect(r.body.error.details).toEqual([
        expect.objectContaining({
          path: 'spec.transport',
          message: expect.stringMatching(
            /stdio connectors run a command on the gateway host and need an operator key/,
          ),
        }),
      ])
    }
    expect(await acmeConnectors()).toEqual([])
  })

  it('a tenant admin may use sealed values, which reach the upstream', async () => {
    const sealed = seal(loadMasterKey(gw.dataDir), 'sealed-for-acme')
    const r = await gw.api(
      'POST',
      '/v1/admin/manifests',
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: sealedhdr }
spec: { transport: http, url: "${up.url}", headers: { x-sealed: { sealed: "${sealed}" } } }
`,
      acmeAdmin,
    )
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    expect(await acmeConnectors()).toEqual(['sealedhdr'])
    await eventually(() => up.seen.some((h) => h['x-sealed'] === 'sealed-for-acme'))
    expect(up.seen.some((h) => h['x-a'] !== undefined || h['x-b'] !== undefined)).toBe(false)
  })

  it('the operator key applies the same manifests', async () => {
    for (const doc of [envConnector('openv', up.url), STDIO]) {
      const dry = await gw.api('POST', '/v1/admin/manifests?dry_run=true', doc, ADMIN_KEY)
      expect(dry.status, JSON.stringify(dry.body)).toBe(200)
      const r = await gw.api('POST', '/v1/admin/manifests', doc, ADMIN_KEY)
      expect(r.status, JSON.stringify(r.body)).toBe(200)
    }
    expect((await acmeConnectors()).sort()).toEqual(['hostcmd', 'openv', 'sealedhdr'])
    // the operator's env references resolve from the gateway's environment
    await eventually(() => up.seen.some((h) => h['x-b'] === CANARY))
  })
})
