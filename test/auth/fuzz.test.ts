import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startTestIdp, type TestIdp } from '../helpers/oidc.js'

/**
 * Fuzzed Authorization headers and JWTs (oversized, malformed base64, wrong claim types, and
 * wrongly typed claims under a valid signature) never crash the gateway and never reach a
 * handler. The seed is printed with every failure; FUZZ_SEED=<n> replays a run.
 */

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)

/** mulberry32: small, seedable, good enough to pick cases. */
function rng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  return { next, int, pick }
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

/** The targets: routes that would change state or reveal data if a handler ever ran. */
const TARGETS: { method: string; path: string; body?: string }[] = [
  { method: 'POST', path: '/v1/threads', body: '{}' },
  { method: 'POST', path: '/v1/runs', body: '{"agent":"flex","input":{"mode":"echo"}}' },
  { method: 'GET', path: '/v1/admin/keys' },
  { method: 'DELETE', path: '/v1/threads/t1' },
  {
    method: 'POST',
    path: '/mcp',
    body: '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}',
  },
]

let idp: TestIdp
let gw: TestGateway
let issuer: string

beforeAll(async () => {
  idp = await startTestIdp({ alice: { tenant: 'acme', roles: ['admin'] } })
  issuer = idp.issuer
  gw = await startTestGateway({
    config: { oidc: { issuers: [{ issuer, id: 'kc', tenantClaim: 'tenant' }] } },
  })
  await gw.api('POST', '/v1/admin/tenants', { name: 'acme' })
})

afterAll(async () => {
  await gw?.close()
  await idp?.close()
})

async function send(authorization: string, target = TARGETS[0]!): Promise<number> {
  const res = await fetch(gw.url + target.path, {
    method: target.method,
    headers: {
      authorization,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    ...(target.body ? { body: target.body } : {}),
  })
  await res.arrayBuffer()
  return res.status
}

/** Raw bytes on a socket, for headers fetch would refuse to send; resolves with the status line's code. */
function sendRaw(head: Buffer): Promise<number> {
  const { port } = new URL(gw.url)
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1')
    let got = ''
    s.on('data', (d) => {
      got += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got)
      if (m) {
        resolve(Number(m[1]))
        s.destroy()
      }
    })
    s.on('error', reject)
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)))
    s.write(head)
  })
}

function claimsVariants(r: ReturnType<typeof rng>): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  const odd = [
    null,
    0,
    -1,
    1e300,
    'x',
    '',
    [],
    {},
    [1, 2],
    { a: 1 },
    true,
    'A'.repeat(5000),
    '../../etc',
    '\u0000',
  ]
  const base: Record<string, unknown> = {
    iss: issuer,
    sub: 'alice',
    aud: `${gw.url}/mcp`,
    exp: now + 600,
    iat: now,
    tenant: 'acme',
    roles: ['admin'],
    scope: 'mcp gatehouse:admin',
  }
  for (const k of Object.keys(base)) if (r.next() < 0.35) base[k] = r.pick(odd)
  if (r.next() < 0.2) base[r.pick(['exp', 'nbf', 'iat'])] = r.pick(['999', '1e3', -1e12, 2 ** 60, 0.5])
  if (r.next() < 0.1) delete base[r.pick(Object.keys(base))]
  return base
}

describe(`fuzzed credentials (seed ${SEED})`, () => {
  it('unsigned and malformed tokens: 401 (or a parser 4xx), never 5xx, never a handler', async () => {
    const r = rng(SEED)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.~!$%&*:;,'
    const junk = (n: number) => Array.from({ length: n }, () => alphabet[r.int(alphabet.length)]).join('')
    const generators: (() => string)[] = [
      () => junk(r.int(200)),
      () => `Bearer ${junk(1 + r.int(300))}`,
      () => `bearer   ${junk(40)}   `,
      () => `Bearer ${Array.from({ length: r.int(6) }, () => junk(r.int(60))).join('.')}`,
      () =>
        `Bearer ${b64(r.pick([{ alg: 'none' }, { alg: 'RS256', kid: 7 }, { alg: null }, [], 'x', { alg: 'RS256', kid: 'k'.repeat(3000) }]))}.${b64(claimsVariants(r))}.${junk(r.int(350))}`,
      () =>
        `Bearer ${b64({ alg: r.pick(['RS256', 'ES256', 'HS256', 'none', 'PS512', 'EdDSA']), kid: 'idp-key-1' })}.${r.pick([b64('not json'), b64('null'), b64('[1]'), '%%%', '', b64(claimsVariants(r))])}.${r.pick(['', '===', junk(86), '..'])}`,
      () => `Bearer gk_${junk(r.int(100))}`,
      () => `Bearer ${'eyJ'.repeat(1 + r.int(3000))}`,
      () => `Bearer ${junk(8193)}`,
      () => `Bearer ${junk(8000)}.${junk(100)}.${junk(100)}`,
      () => `Basic ${b64('admin:admin')}`,
      () =>
        `Bearer ${b64({ alg: `\u2603${junk(5)}\u00e9\r\n"\\`, kid: '\u2603' })}.${b64(claimsVariants(r))}.${junk(20)}`,
      () =>
        `Bearer ${b64({ alg: 'RS256', crit: ['b64'], b64: false })}.${b64(claimsVariants(r))}.${junk(10)}`,
      () =>
        `Bearer ${b64({ alg: 'RS256', jku: 'http://169.254.169.254/jwks', x5u: 'http://10.0.0.1/x' })}.${b64(claimsVariants(r))}.${junk(10)}`,
      () =>
        `Bearer ${b64({ alg: 'RS256', jwk: { kty: 'oct', k: 'AAAA' } })}.${b64(claimsVariants(r))}.${junk(10)}`,
    ]
    const statuses = new Map<number, number>()
    for (let i = 0; i < 400; i++) {
      const gen = r.int(generators.length)
      const header = generators[gen]!()
      const target = r.pick(TARGETS)
      const status = await send(header, target)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      expect(
        [400, 401, 431],
        `seed ${SEED} case ${i} generator ${gen} ${target.method} ${target.path}`,
      ).toContain(status)
    }
    expect(statuses.get(401)).toBeGreaterThan(300)
  })

  it('tokens signed by the trusted issuer with wrongly typed claims: refused cleanly (401/403), never 5xx', async () => {
    const r = rng(SEED + 1)
    let refused = 0
    for (let i = 0; i < 150; i++) {
      const claims = claimsVariants(r)
      let token: string
      try {
        token = await idp.sign(claims)
      } catch {
        continue // jose refuses to sign some shapes (e.g. a non-numeric exp); those never exist
      }
      // A token whose claims are all well-typed and valid would pass: not what this test is about.
      const wellFormed =
        claims.iss === issuer &&
        typeof claims.sub === 'string' &&
        // eslint-disable-next-line no-control-regex
        /^[^\x00-\x1f\x7f]{1,255}$/.test(claims.sub) &&
        claims.aud === `${gw.url}/mcp` &&
        typeof claims.exp === 'number' &&
        claims.exp > Date.now() / 1000 &&
        (claims.iat === undefined || typeof claims.iat === 'number') &&
        (claims.nbf === undefined || (typeof claims.nbf === 'number' && claims.nbf < Date.now() / 1000)) &&
        claims.tenant === 'acme'
      if (wellFormed) continue
      const target = r.pick(TARGETS)
      const status = await send(`Bearer ${token}`, target)
      // 431: a huge claim makes the header exceed Node's limit; refused before any route runs.
      expect(
        [401, 403, 431],
        `seed ${SEED} signed case ${i} ${JSON.stringify(claims).slice(0, 300)}`,
      ).toContain(status)
      refused++
    }
    expect(refused).toBeGreaterThan(100)
  })

  it('raw bytes fetch would not send (non-ASCII, control characters, folded and duplicate headers)', async () => {
    const { host } = new URL(gw.url)
    const heads = [
      Buffer.concat([
        Buffer.from(`GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer `),
        Buffer.from([0xff, 0xfe, 0x80, 0x41]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.from(
        `GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer a\u0001b.c.d\r\nConnection: close\r\n\r\n`,
        'latin1',
      ),
      Buffer.from(
        `GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer\r\n x.y.z\r\nConnection: close\r\n\r\n`,
      ),
      Buffer.from(
        `GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer gk_a\r\nAuthorization: Bearer gk_b\r\nConnection: close\r\n\r\n`,
      ),
      Buffer.from(
        `GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${'B'.repeat(70_000)}\r\nConnection: close\r\n\r\n`,
      ),
      Buffer.from(
        `GET /v1/admin/keys HTTP/1.1\r\nHost: ${host}\r\nAuthorization:\r\nConnection: close\r\n\r\n`,
      ),
    ]
    for (const [i, head] of heads.entries()) {
      const status = await sendRaw(head)
      expect([400, 401, 431], `raw case ${i}`).toContain(status)
    }
  })

  it('afterwards the gateway is healthy, valid tokens work, and no fuzzed request reached a handler', async () => {
    expect((await fetch(gw.url + '/healthz')).status).toBe(200)
    const good = await idp.token('alice', { resource: `${gw.url}/mcp` })
    expect(await send(`Bearer ${good}`, TARGETS[2])).toBe(200)
    // Handlers count their requests by route; refused requests count as "auth" or "error".
    const metrics = await (await fetch(gw.url + '/metrics')).text()
    const routes = [...metrics.matchAll(/route="([^"]+)"/g)].map((m) => m[1]!)
    const handled = new Set(routes.filter((r) => r !== 'auth' && r !== 'error'))
    // only the valid call above, the health check and the setup's tenant creation reached a handler
    expect([...handled].sort()).toEqual(['GET /healthz', 'GET /v1/admin/keys', 'POST /v1/admin/tenants'])
    expect((await gw.api('GET', '/v1/admin/keys')).status).toBe(200)
    const threads = await gw.gw.store.runs.listThreads({
      tenant: 'acme',
      principal: { kind: 'system', id: 't' },
      roles: new Set(['admin']),
      scopes: [],
      operator: true,
      requestId: 'x',
      trace: {},
    })
    expect(threads.items).toEqual([])
  })
})
