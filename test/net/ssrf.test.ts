import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request, type Agent } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { configFromEnv, parseConfig } from '../../src/config.js'
import { GatewayError } from '../../src/errors.js'
import {
  assertPublicUrl,
  createGuardedAgent,
  isLocalName,
  nonPublicAddressReason,
  SsrfRefusedError,
  type LookupFunction,
} from '../../src/net/ssrf.js'

/** Runs fn, expects an SsrfRefusedError (a GatewayError 'bad_request'), returns it. */
function refusal(fn: () => unknown): SsrfRefusedError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(SsrfRefusedError)
    expect((err as GatewayError).code).toBe('bad_request')
    return err as SsrfRefusedError
  }
  throw new Error('expected a refusal, got none')
}

describe('nonPublicAddressReason', () => {
  it.each([
    ['127.0.0.1', /loopback/],
    ['127.255.255.254', /loopback/],
    ['10.1.2.3', /RFC 1918/],
    ['172.16.0.1', /RFC 1918/],
    ['172.31.255.255', /RFC 1918/],
    ['192.168.1.1', /RFC 1918/],
    ['169.254.169.254', /link-local/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.255', /carrier-grade NAT/],
    ['0.0.0.0', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['255.255.255.255', /reserved/],
    ['::', /unspecified/],
    ['::1', /loopback/],
    ['::ffff:127.0.0.1', /IPv4-mapped.*127\.0\.0\.1.*loopback/],
    ['::ffff:7f00:1', /IPv4-mapped.*loopback/],
    ['::ffff:10.0.0.1', /IPv4-mapped.*RFC 1918/],
    ['::ffff:169.254.169.254', /IPv4-mapped.*link-local/],
    ['::127.0.0.1', /IPv4-compatible.*loopback/],
    ['64:ff9b::a9fe:a9fe', /NAT64.*169\.254\.169\.254/],
    ['2002:7f00:1::1', /6to4.*loopback/],
    ['fd00::1', /unique-local/],
    ['fc00::1', /unique-local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['ff02::1', /multicast/],
    ['not-an-ip', /not an IP/],
  ])('%s is refused (%s)', (address, why) => {
    expect(nonPublicAddressReason(address)).toMatch(why)
  })

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '100.63.255.255',
    '100.128.0.1',
    '172.15.255.255',
    '172.32.0.1',
    '192.169.0.1',
    '2001:4860:4860::8888',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
  ])('%s is public', (address) => {
    expect(nonPublicAddressReason(address)).toBeUndefined()
  })

  it('local names', () => {
    for (const n of ['localhost', 'LOCALHOST', 'localhost.', 'api.localhost', 'x.y.localhost.'])
      expect(isLocalName(n)).toBe(true)
    for (const n of ['localhost.example.com', 'example.com', 'notlocalhost'])
      expect(isLocalName(n)).toBe(false)
  })
})

describe('assertPublicUrl', () => {
  const refused = [
    'http://127.0.0.1:8080/hook',
    'http://10.0.0.5/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::1]:9000/',
    'http://[::ffff:127.0.0.1]/',
    'http://[fd00::1]/',
    'http://localhost:3000/',
    'http://LocalHost./',
    'http://api.localhost/',
    'http://0.0.0.0/',
    'http://100.64.1.1/',
    // WHATWG URL parsing normalises these IPv4 spellings to 127.0.0.1.
    'http://2130706433/',
    'http://0x7f.1/',
    'http://127.1/',
  ]

  it.each(refused)('refuses %s unless private networks are allowed', (url) => {
    const err = refusal(() => assertPublicUrl(url, { allowPrivate: false }))
    expect(err.message).toContain('GATEHOUSE_ALLOW_PRIVATE_NETWORK=1')
    expect(err.message).toContain(new URL(url).host)
    expect(assertPublicUrl(url, { allowPrivate: true }).href).toBe(new URL(url).href)
  })

  it('says which address was refused and why', () => {
    const err = refusal(() => assertPublicUrl('http://169.254.169.254/latest', { allowPrivate: false }))
    expect(err.message).toMatch(/169\.254\.169\.254 is link-local/)
    const mapped = refusal(() => assertPublicUrl('http://[::ffff:127.0.0.1]/', { allowPrivate: false }))
    expect(mapped.message).toMatch(/IPv4-mapped IPv6 of 127\.0\.0\.1/)
  })

  it('does not echo paths or query strings (they may carry tokens)', () => {
    const err = refusal(() =>
      assertPublicUrl('http://10.0.0.1/hooks/T000/B000/XXXXSECRETXXXX?token=abc', { allowPrivate: false }),
    )
    expect(err.message).not.toContain('XXXXSECRETXXXX')
    expect(err.message).not.toContain('token=abc')
  })

  it('accepts public http and https URLs', () => {
    for (const url of [
      'https://hooks.example.com/gatehouse',
      'http://8.8.8.8:8080/x',
      'https://[2001:4860:4860::8888]/x',
    ])
      expect(assertPublicUrl(url, { allowPrivate: false }).href).toBe(new URL(url).href)
  })

  it('only http and https, never credentials, even with private networks allowed', () => {
    for (const allowPrivate of [false, true]) {
      for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'javascript:alert(1)', 'gopher://x/'])
        expect(refusal(() => assertPublicUrl(url, { allowPrivate })).message).toMatch(/only http and https/)
      expect(
        refusal(() => assertPublicUrl('https://user:pw@example.com/', { allowPrivate })).message,
      ).toMatch(/credentials/)
      expect(refusal(() => assertPublicUrl('https://user@example.com/', { allowPrivate })).message).toMatch(
        /credentials/,
      )
      expect(refusal(() => assertPublicUrl('not a url', { allowPrivate })).message).toMatch(/URL is invalid/)
    }
  })
})

describe('config: GATEHOUSE_ALLOW_PRIVATE_NETWORK', () => {
  it('is off by default and on with =1', () => {
    expect(parseConfig(configFromEnv({})).allowPrivateNetwork).toBe(false)
    expect(parseConfig(configFromEnv({ GATEHOUSE_ALLOW_PRIVATE_NETWORK: '1' })).allowPrivateNetwork).toBe(
      true,
    )
    expect(parseConfig(configFromEnv({ GATEHOUSE_ALLOW_PRIVATE_NETWORK: '0' })).allowPrivateNetwork).toBe(
      false,
    )
  })
})

describe('guarded dispatcher (connect-time check on the resolved address)', () => {
  let v4: Server
  let v6: Server
  let port4 = 0
  let port6 = 0
  let connections = 0
  const agents: Agent[] = []

  const listen = (host: string): Promise<Server> =>
    new Promise((resolve) => {
      const s = createServer((_req, res) => res.end('ok'))
      s.on('connection', () => connections++)
      s.listen(0, host, () => resolve(s))
    })

  beforeAll(async () => {
    v4 = await listen('127.0.0.1')
    v6 = await listen('::1')
    port4 = (v4.address() as AddressInfo).port
    port6 = (v6.address() as AddressInfo).port
  })
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.close()))
  })
  afterAll(async () => {
    v4.closeAllConnections()
    v6.closeAllConnections()
    await Promise.all([new Promise((r) => v4.close(r)), new Promise((r) => v6.close(r))])
  })

  /** A resolver answering from a fixed table (no real DNS), counting calls. */
  function fakeDns(table: Record<string, string[]>): LookupFunction & { calls: number } {
    const fn = ((hostname, options, callback) => {
      fn.calls++
      const list = (table[hostname] ?? []).map((address) => ({
        address,
        family: address.includes(':') ? 6 : 4,
      }))
      if (!list.length) {
        const e: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`)
        e.code = 'ENOTFOUND'
        return callback(e, [])
      }
      if (options.all) callback(null, list)
      else callback(null, list[0]!.address, list[0]!.family)
    }) as LookupFunction & { calls: number }
    fn.calls = 0
    return fn
  }

  function agent(allowPrivate: boolean, lookup?: LookupFunction): Agent {
    const a = createGuardedAgent({ allowPrivate, connectTimeoutMs: 2000, ...(lookup ? { lookup } : {}) })
    agents.push(a)
    return a
  }

  async function get(url: string, dispatcher: Agent): Promise<number> {
    const res = await request(url, { dispatcher })
    await res.body.text()
    return res.statusCode
  }

  async function expectRefused(url: string, dispatcher: Agent, why: RegExp): Promise<void> {
    const before = connections
    const err = await get(url, dispatcher).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(SsrfRefusedError)
    expect((err as Error).message).toMatch(why)
    expect((err as Error).message).toContain('GATEHOUSE_ALLOW_PRIVATE_NETWORK=1')
    // Refused before connecting: the receiver never saw a connection.
    expect(connections).toBe(before)
  }

  it('refuses loopback literals at connect time, allows them when private networks are allowed', async () => {
    const guarded = agent(false)
    await expectRefused(`http://127.0.0.1:${port4}/`, guarded, /127\.0\.0\.1 is loopback/)
    await expectRefused(`http://[::1]:${port6}/`, guarded, /::1 is loopback/)
    await expectRefused(`http://[::ffff:127.0.0.1]:${port4}/`, guarded, /IPv4-mapped/)
    const open = agent(true)
    const before = connections
    expect(await get(`http://127.0.0.1:${port4}/`, open)).toBe(200)
    expect(await get(`http://[::1]:${port6}/`, open)).toBe(200)
    expect(await get(`http://[::ffff:127.0.0.1]:${port4}/`, open)).toBe(200)
    expect(connections).toBeGreaterThan(before)
  })

  it('refuses `localhost` by name; reaches it when allowed', async () => {
    await expectRefused(`http://localhost:${port4}/`, agent(false), /localhost is a local name/)
    expect(await get(`http://localhost:${port4}/`, agent(true))).toBe(200)
  })

  it('a public-looking name that resolves to loopback is refused on the resolved address', async () => {
    const dns = fakeDns({ 'hooks.example.test': ['127.0.0.1'] })
    const url = `http://hooks.example.test:${port4}/hook`
    // The up-front check cannot know where the name points: it passes.
    expect(() => assertPublicUrl(url, { allowPrivate: false })).not.toThrow()
    await expectRefused(
      url,
      agent(false, dns),
      /hooks\.example\.test resolved to 127\.0\.0\.1, which is loopback/,
    )
    expect(dns.calls).toBe(1)
    expect(await get(url, agent(true, dns))).toBe(200)
  })

  it('DNS rebinding: the address checked is the address connected to', async () => {
    // First answer public (what an up-front resolution would have seen), then loopback.
    let n = 0
    const rebinding: LookupFunction = (_hostname, options, callback) => {
      const address = n++ === 0 ? '93.184.216.34' : '127.0.0.1'
      if (options.all) callback(null, [{ address, family: 4 }])
      else callback(null, address, 4)
    }
    rebinding('rebind.example.test', { all: true }, () => undefined) // the "check" resolution
    await expectRefused(
      `http://rebind.example.test:${port4}/`,
      agent(false, rebinding),
      /resolved to 127\.0\.0\.1/,
    )
  })

  it('a name with one public and one private answer is refused', async () => {
    const dns = fakeDns({ 'mixed.example.test': ['93.184.216.34', '127.0.0.1'] })
    await expectRefused(`http://mixed.example.test:${port4}/`, agent(false, dns), /127\.0\.0\.1/)
    const v6dns = fakeDns({ 'six.example.test': ['::1'] })
    await expectRefused(`http://six.example.test:${port6}/`, agent(false, v6dns), /::1, which is loopback/)
    const mapped = fakeDns({ 'mapped.example.test': ['::ffff:127.0.0.1'] })
    await expectRefused(`http://mapped.example.test:${port4}/`, agent(false, mapped), /IPv4-mapped/)
  })
})
