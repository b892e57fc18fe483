import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { LRUCache } from 'lru-cache'

export interface FailureLimiterOptions {
  /** Failures a fresh source may have in a row. */
  burst: number
  /** Failures added back per minute. */
  perMinute: number
  /** Sources remembered at once (least recently failing forgotten first). */
  maxSources?: number
}

interface Bucket {
  tokens: number
  at: number
  /** Set when the bucket ran dry; cleared once it refills, so each lock-out is audited once. */
  dry: boolean
}

/**
 * A token bucket per source address, spent by failed authentications only (hand-written: a few
 * lines on lru-cache). An empty bucket means the source gets 429 for credentials that are not
 * already known good, until it refills; successful requests never spend anything.
 */
export class FailureLimiter {
  private readonly buckets: LRUCache<string, Bucket>
  private readonly perMs: number
  private readonly fullAfterMs: number

  constructor(private readonly opts: FailureLimiterOptions) {
    this.perMs = opts.perMinute / 60_000
    // A bucket is forgotten once it would be full again (a fresh source starts full anyway).
    this.fullAfterMs = Math.ceil(opts.burst / this.perMs)
    this.buckets = new LRUCache({ max: opts.maxSources ?? 50_000, ttl: this.fullAfterMs, ttlAutopurge: true })
  }

  private refill(b: Bucket, now: number): void {
    b.tokens = Math.min(this.opts.burst, b.tokens + (now - b.at) * this.perMs)
    b.at = now
    if (b.tokens >= 1) b.dry = false
  }

  /** False while no source has failed recently: the hot path can skip looking up its address. */
  get active(): boolean {
    return this.buckets.size > 0
  }

  /** Milliseconds until `source` may try again; 0 when it may now. */
  retryAfterMs(source: string, now = Date.now()): number {
    const b = this.buckets.get(source)
    if (!b) return 0
    this.refill(b, now)
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / this.perMs)
  }

  /** Spends one token for a failure; true when this failure emptied the bucket. */
  fail(source: string, now = Date.now()): boolean {
    let b = this.buckets.get(source)
    if (!b) b = { tokens: this.opts.burst, at: now, dry: false }
    else this.refill(b, now)
    b.tokens = Math.max(0, b.tokens - 1)
    // (re)set: the time to live restarts from this failure
    this.buckets.set(source, b)
    if (b.tokens < 1 && !b.dry) {
      b.dry = true
      return true
    }
    return false
  }
}

/**
 * The address a request came from: the socket's peer, or with `trustProxy` the last
 * X-Forwarded-For hop (what the proxy in front saw). IPv4-mapped IPv6 is unwrapped; other IPv6
 * addresses count by their /64, since one host usually owns a whole /64.
 */
export function sourceOf(req: IncomingMessage, trustProxy: boolean): string {
  let addr = req.socket.remoteAddress ?? 'unknown'
  if (trustProxy) {
    const xff = req.headers['x-forwarded-for']
    const last = (Array.isArray(xff) ? xff.join(',') : (xff ?? '')).split(',').pop()?.trim()
    if (last && isIP(last)) addr = last
  }
  if (addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4) return addr.slice(7)
  if (isIP(addr) === 6) return ipv6Prefix64(addr)
  return addr
}

function ipv6Prefix64(addr: string): string {
  const [head = '', tail = ''] = addr.split('%')[0]!.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = addr.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  return groups
    .slice(0, 4)
    .map((g) => parseInt(g || '0', 16).toString(16))
    .join(':')
    .concat('::/64')
}
