import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { isIP } from 'node:net'
import { Agent, buildConnector } from 'undici'
import { GatewayError } from '../errors.js'

/**
 * The SSRF guard for URLs learned at run time (webhook and push targets, discovered metadata,
 * client metadata documents). Private, loopback, link-local and other non-public addresses are
 * refused unless the operator sets GATEHOUSE_ALLOW_PRIVATE_NETWORK=1.
 *
 * Two layers: `assertPublicUrl` checks a URL up front (scheme, credentials, literal addresses,
 * local names) so a bad target is rejected when it is given; the dispatcher from
 * `createGuardedAgent` checks the address actually connected to, after DNS resolution, so a name
 * that resolves (or re-resolves, DNS rebinding) to a private address is refused at connect time.
 */

export const ALLOW_PRIVATE_HINT = 'set GATEHOUSE_ALLOW_PRIVATE_NETWORK=1 to allow private network targets'

/** A URL or address the guard refused. A GatewayError 'bad_request': the caller's input is at fault. */
export class SsrfRefusedError extends GatewayError {
  constructor(message: string) {
    super('bad_request', message)
    this.name = 'SsrfRefusedError'
  }
}

export interface SsrfOptions {
  /** true disables the address and local-name checks (GATEHOUSE_ALLOW_PRIVATE_NETWORK=1). */
  allowPrivate: boolean
}

/** Node's dns.lookup signature, as net.connect calls it. */
export type LookupFunction = (
  hostname: string,
  options: { family?: number | string; hints?: number; all?: boolean },
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void

/** scheme://host[:port] of a URL: enough to say what was refused without echoing paths or queries (tokens). */
function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}`
}

function parseIPv4(ip: string): number[] | undefined {
  if (isIP(ip) !== 4) return undefined
  return ip.split('.').map(Number)
}

/** 16 bytes of an IPv6 address (zone id dropped), or undefined when it is not one. */
function parseIPv6(input: string): number[] | undefined {
  let ip = input.split('%')[0] ?? ''
  if (isIP(ip) !== 6) return undefined
  // A trailing dotted quad (::ffff:1.2.3.4) is the last two groups.
  const lastColon = ip.lastIndexOf(':')
  const quad = parseIPv4(ip.slice(lastColon + 1))
  if (quad) {
    const hi = ((quad[0]! << 8) | quad[1]!).toString(16)
    const lo = ((quad[2]! << 8) | quad[3]!).toString(16)
    ip = `${ip.slice(0, lastColon + 1)}${hi}:${lo}`
  }
  const toGroups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const dbl = ip.indexOf('::')
  let groups: number[]
  if (dbl >= 0) {
    const left = toGroups(ip.slice(0, dbl))
    const right = toGroups(ip.slice(dbl + 2))
    const fill = 8 - left.length - right.length
    if (fill < 0) return undefined
    groups = [...left, ...new Array<number>(fill).fill(0), ...right]
  } else {
    groups = toGroups(ip)
  }
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined
  return groups.flatMap((g) => [g >> 8, g & 0xff])
}

function inV4(b: number[], base: [number, number, number, number], bits: number): boolean {
  const ip = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0
  const net = ((base[0] << 24) | (base[1] << 16) | (base[2] << 8) | base[3]) >>> 0
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  return (ip & mask) >>> 0 === (net & mask) >>> 0
}

const V4_RANGES: readonly [[number, number, number, number], number, string][] = [
  [[0, 0, 0, 0], 8, 'unspecified ("this network", 0.0.0.0/8)'],
  [[10, 0, 0, 0], 8, 'private (RFC 1918, 10.0.0.0/8)'],
  [[100, 64, 0, 0], 10, 'carrier-grade NAT (100.64.0.0/10)'],
  [[127, 0, 0, 0], 8, 'loopback (127.0.0.0/8)'],
  [[169, 254, 0, 0], 16, 'link-local (169.254.0.0/16, includes cloud metadata)'],
  [[172, 16, 0, 0], 12, 'private (RFC 1918, 172.16.0.0/12)'],
  [[192, 0, 0, 0], 24, 'reserved (IETF protocol assignments, 192.0.0.0/24)'],
  [[192, 168, 0, 0], 16, 'private (RFC 1918, 192.168.0.0/16)'],
  [[198, 18, 0, 0], 15, 'reserved (benchmarking, 198.18.0.0/15)'],
  [[224, 0, 0, 0], 4, 'multicast (224.0.0.0/4)'],
  [[240, 0, 0, 0], 4, 'reserved (240.0.0.0/4, includes broadcast)'],
]

function v4Reason(b: number[]): string | undefined {
  for (const [base, bits, why] of V4_RANGES) if (inV4(b, base, bits)) return why
  return undefined
}

function startsWith(b: number[], prefix: number[]): boolean {
  return prefix.every((v, i) => b[i] === v)
}

function v6Reason(b: number[]): string | undefined {
  const zeros = (n: number): boolean => b.slice(0, n).every((x) => x === 0)
  if (b.every((x) => x === 0)) return 'unspecified (::)'
  if (zeros(15) && b[15] === 1) return 'loopback (::1)'
  const embedded = (v4: number[], form: string): string | undefined => {
    const why = v4Reason(v4)
    return why ? `${form} of ${v4.join('.')}, which is ${why}` : undefined
  }
  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), ::ffff:0:a.b.c.d (SIIT translated)
  if (zeros(10) && b[10] === 0xff && b[11] === 0xff) return embedded(b.slice(12), 'IPv4-mapped IPv6')
  if (zeros(12)) return embedded(b.slice(12), 'IPv4-compatible IPv6')
  if (zeros(8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0)
    return embedded(b.slice(12), 'IPv4-translated IPv6')
  // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
  if (startsWith(b, [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0]))
    return embedded(b.slice(12), 'NAT64 (64:ff9b::/96)')
  if (startsWith(b, [0, 0x64, 0xff, 0x9b, 0, 1])) return 'local-use NAT64 (64:ff9b:1::/48)'
  // 6to4 2002:AABB:CCDD::/48 embeds the IPv4 address AA.BB.CC.DD.
  if (b[0] === 0x20 && b[1] === 0x02) return embedded(b.slice(2, 6), '6to4 (2002::/16)')
  if (startsWith(b, [0x01, 0, 0, 0, 0, 0, 0, 0])) return 'discard-only (100::/64)'
  if ((b[0]! & 0xfe) === 0xfc) return 'unique-local (fc00::/7)'
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local (fe80::/10)'
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'site-local (fec0::/10, deprecated)'
  if (b[0] === 0xff) return 'multicast (ff00::/8)'
  return undefined
}

/**
 * Why an IP address is not a public unicast address ("loopback (127.0.0.0/8)", ...), or
 * undefined when it is public. Anything that is not a valid IP literal is refused too.
 */
export function nonPublicAddressReason(address: string): string | undefined {
  const ip = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  const v4 = parseIPv4(ip)
  if (v4) return v4Reason(v4)
  const v6 = parseIPv6(ip)
  if (v6) return v6Reason(v6)
  return 'not an IP address'
}

/** `localhost`, `*.localhost` (RFC 6761), with or without the trailing root dot. */
export function isLocalName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.+$/, '')
  return h === 'localhost' || h.endsWith('.localhost') || h === 'localhost.localdomain'
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname
}

/**
 * Checks a run-time URL without resolving it: http or https only, no credentials, and (unless
 * allowPrivate) no literal non-public address and no local name. Returns the parsed URL.
 * A hostname is checked again at connect time, on the address it resolves to
 * (see createGuardedAgent); this is the up-front half of the guard.
 */
export function assertPublicUrl(url: string | URL, { allowPrivate }: SsrfOptions): URL {
  let u: URL
  try {
    u = typeof url === 'string' ? new URL(url) : new URL(url.href)
  } catch {
    throw new SsrfRefusedError('URL is invalid: expected an absolute http or https URL')
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new SsrfRefusedError(`URL scheme ${u.protocol} refused: only http and https are allowed`)
  if (u.username || u.password)
    throw new SsrfRefusedError(
      `URL ${describeUrl(u)} refused: credentials in URLs are not allowed (use a signing secret instead)`,
    )
  const host = bareHost(u.hostname)
  if (!host) throw new SsrfRefusedError('URL refused: it has no host')
  if (allowPrivate) return u
  if (isLocalName(host))
    throw new SsrfRefusedError(
      `URL ${describeUrl(u)} refused: ${host} is a local name; ${ALLOW_PRIVATE_HINT}`,
    )
  if (isIP(host)) {
    const why = nonPublicAddressReason(host)
    if (why)
      throw new SsrfRefusedError(
        `URL ${describeUrl(u)} refused: address ${host} is ${why}; ${ALLOW_PRIVATE_HINT}`,
      )
  }
  return u
}

/** Throws SsrfRefusedError when `address` (what `hostname` resolved to) is not public. */
function checkResolved(hostname: string, address: string): void {
  const why = nonPublicAddressReason(address)
  if (!why) return
  const what = hostname === address ? `address ${address}` : `${hostname} resolved to ${address}, which`
  throw new SsrfRefusedError(`connection refused by the SSRF guard: ${what} is ${why}; ${ALLOW_PRIVATE_HINT}`)
}

/**
 * A lookup for net/tls.connect that resolves every address of the name and refuses the
 * connection when any of them is not public (so an attacker cannot mix a public and a private
 * answer). The socket then connects to exactly the addresses checked here.
 */
export function guardedLookup(
  inner: LookupFunction = dnsLookup as unknown as LookupFunction,
): LookupFunction {
  return (hostname, options, callback) => {
    if (isLocalName(hostname)) {
      callback(
        new SsrfRefusedError(
          `connection refused by the SSRF guard: ${hostname} is a local name; ${ALLOW_PRIVATE_HINT}`,
        ),
        [],
      )
      return
    }
    inner(hostname, { ...options, all: true }, (err, result) => {
      if (err) return callback(err, [])
      const list: LookupAddress[] = Array.isArray(result)
        ? result
        : [{ address: result, family: isIP(result) || 4 }]
      if (!list.length) {
        const e: NodeJS.ErrnoException = new Error(`${hostname}: no addresses`)
        e.code = 'ENOTFOUND'
        return callback(e, [])
      }
      try {
        for (const a of list) checkResolved(hostname, a.address)
      } catch (refused) {
        return callback(refused as SsrfRefusedError, [])
      }
      if (options.all) return callback(null, list)
      const first = list[0]!
      callback(null, first.address, first.family)
    })
  }
}

export interface GuardedAgentOptions extends SsrfOptions {
  /** Connect timeout (ms); default 10 s. */
  connectTimeoutMs?: number
  /** DNS resolution; tests inject a resolver here. Default dns.lookup. */
  lookup?: LookupFunction
  /** Keep-alive connections per origin; default 4. */
  connections?: number
}

/**
 * An undici Agent whose every connection passes the SSRF guard on the resolved address:
 * literal IP hosts are checked before connecting, names through `guardedLookup`. With
 * allowPrivate the checks are off (the lookup is still the injected one, for tests).
 */
export function createGuardedAgent(opts: GuardedAgentOptions): Agent {
  const timeout = opts.connectTimeoutMs ?? 10_000
  const inner = opts.lookup ?? (dnsLookup as unknown as LookupFunction)
  const lookup = opts.allowPrivate ? inner : guardedLookup(inner)
  const connector = buildConnector({ timeout, lookup } as buildConnector.BuildOptions)
  const connect: buildConnector.connector = (options, callback) => {
    if (!opts.allowPrivate) {
      const host = bareHost(options.hostname)
      // net.connect skips the lookup for IP literals, so check them here.
      if (isIP(host)) {
        const why = nonPublicAddressReason(host)
        if (why) {
          callback(
            new SsrfRefusedError(
              `connection refused by the SSRF guard: address ${host} is ${why}; ${ALLOW_PRIVATE_HINT}`,
            ),
            null,
          )
          return
        }
      }
    }
    connector(options, callback)
  }
  return new Agent({ connect, connections: opts.connections ?? 4 })
}
