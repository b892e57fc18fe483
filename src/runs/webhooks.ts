import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { hostname } from 'node:os'
import { request, type Agent } from 'undici'
import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { assertPublicUrl, createGuardedAgent, SsrfRefusedError, type LookupFunction } from '../net/ssrf.js'
import type { ClaimedWebhookDelivery, WebhookDeliveryRecord, WebhookOutbox } from '../store/types.js'
import type { MasterKey } from '../vault/master-key.js'
import { seal, unseal } from '../vault/seal.js'

/**
 * Durable, signed run-completion webhooks. `enqueue` checks the target (SSRF guard) and writes
 * the delivery to the outbox; a background loop claims due deliveries under a lease, POSTs them
 * through the SSRF-guarded dispatcher and retries with exponential backoff. See docs/webhooks.md.
 */

/** Associated data for sealed webhook secrets: a value sealed for another use cannot be replayed here. */
export const WEBHOOK_SECRET_AAD = 'gatehouse/webhook-secret'
export const SIGNATURE_HEADER = 'Gatehouse-Signature'
export const WEBHOOK_ID_HEADER = 'Gatehouse-Webhook-Id'

/** Seals a run's webhook secret for storage (what `enqueue` accepts as `{ sealed }`). */
export function sealWebhookSecret(master: MasterKey, secret: string): string {
  return seal(master, secret, WEBHOOK_SECRET_AAD)
}

/**
 * The tenant's default webhook signing secret (64 hex characters), derived from the master key
 * with HKDF-SHA256, info `gatehouse webhook v1 <tenant>`. Used when a run gives no secret of
 * its own; an admin route can show it to the tenant. Rotating the master key changes it.
 */
export function webhookTenantSecret(master: MasterKey, tenant: string): string {
  return Buffer.from(
    hkdfSync(
      'sha256',
      master.key,
      Buffer.alloc(0),
      Buffer.from(`gatehouse webhook v1 ${tenant}`, 'utf8'),
      32,
    ),
  ).toString('hex')
}

function hmacHex(secret: string, t: number, body: string | Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${t}.`)
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest('hex')
}

/**
 * The `Gatehouse-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
 * The HMAC key is the secret string's UTF-8 bytes.
 */
export function signWebhook(
  secret: string,
  body: string | Buffer,
  tSec = Math.floor(Date.now() / 1000),
): string {
  return `t=${tSec},v1=${hmacHex(secret, tSec, body)}`
}

/**
 * Checks a `Gatehouse-Signature` header against the raw body: true when some `v1` signature
 * matches and `t` is within `toleranceSec` of now (replay window). Constant-time comparison.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  body: string | Buffer,
  toleranceSec = 300,
  nowSec = Math.floor(Date.now() / 1000),
): boolean {
  if (!header) return false
  let t: number | undefined
  const sigs: string[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const k = part.slice(0, eq).trim()
    const v = part.slice(eq + 1).trim()
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v)
    else if (k === 'v1' && /^[0-9a-f]{64}$/i.test(v)) sigs.push(v.toLowerCase())
  }
  if (t === undefined || !sigs.length) return false
  if (Math.abs(nowSec - t) > toleranceSec) return false
  const expected = Buffer.from(hmacHex(secret, t, body), 'hex')
  return sigs.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected))
}

export interface WebhookSenderOptions {
  outbox: WebhookOutbox
  /** Seals per-delivery secrets and derives tenant secrets. */
  masterKey: MasterKey
  /** Keys that may unseal stored secrets (rotation); default [masterKey]. */
  masterKeys?: readonly MasterKey[]
  logger: Logger
  /** GATEHOUSE_ALLOW_PRIVATE_NETWORK=1: webhooks may target private, loopback and link-local addresses. */
  allowPrivateNetwork: boolean
  /** Lease owner id; default `<host>:<pid>:<random>`. */
  owner?: string
  /** How often the loop looks for due deliveries (ms); default 1000. */
  pollMs?: number
  /** Most deliveries in flight at once (claimed only as slots free up); default 16. */
  concurrency?: number
  /** Lease per claimed delivery (ms); longer than one attempt. Default 60 s. */
  leaseMs?: number
  /** Timeout of one attempt, connect to response headers (ms); default 10 s. */
  timeoutMs?: number
  /** Attempts before a delivery is dead; default 10. */
  maxAttempts?: number
  /** First retry delay (ms), doubling each attempt; default 1 s. */
  backoffBaseMs?: number
  /** Longest retry delay (ms), Retry-After included; default 5 min. */
  backoffCapMs?: number
  /** DNS resolution for the guarded dispatcher (tests). */
  lookup?: LookupFunction
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number
}

export interface WebhookEnqueue {
  url: string
  /** The run's own signing secret: plaintext (sealed here) or already sealed with sealWebhookSecret. */
  secret?: string | { sealed: string }
  runId: string
  /** The JSON body, e.g. the run as GET /v1/runs/{id} shows it. */
  payload: unknown
  /** Delivery id; default a fresh `whd_…`. Enqueueing the same id again is a no-op (idempotent). */
  id?: string
}

/**
 * Headers of their own for some deliveries (e.g. A2A push notifications: the config's token and
 * authentication), looked up when each attempt is made so secrets stay where they are stored.
 * null withdraws the delivery: it is marked dead and not retried (its configuration is gone).
 */
export type DeliveryHeaders = (d: ClaimedWebhookDelivery) => Promise<Record<string, string> | null>

/** Outcome of one attempt, before it is recorded. */
type Attempt =
  { ok: true; status: number } | { ok: false; error: string; retry: boolean; retryAfterMs?: number }

const MAX_RESPONSE_BYTES = 4096

/** Seconds or an HTTP date; undefined when absent or unparseable. */
export function parseRetryAfter(
  value: string | string[] | undefined,
  nowMs = Date.now(),
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (!v) return undefined
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs)
}

export class WebhookSender {
  private readonly outbox: WebhookOutbox
  private readonly master: MasterKey
  private readonly masterKeys: readonly MasterKey[]
  private readonly logger: Logger
  private readonly allowPrivate: boolean
  readonly owner: string
  private readonly pollMs: number
  private readonly concurrency: number
  private readonly leaseMs: number
  private readonly timeoutMs: number
  private readonly maxAttempts: number
  private readonly baseMs: number
  private readonly capMs: number
  private readonly random: () => number
  private readonly agent: Agent
  private timer: NodeJS.Timeout | undefined
  private started = false
  private closed = false
  private ticking: Promise<void> | undefined
  private again = false
  /** The last claim filled every free slot: more may be due as soon as one frees up. */
  private backlog = false
  private readonly inFlight = new Set<Promise<void>>()
  private readonly headerSources = new Map<string, DeliveryHeaders>()

  constructor(opts: WebhookSenderOptions) {
    this.outbox = opts.outbox
    this.master = opts.masterKey
    this.masterKeys = opts.masterKeys ?? [opts.masterKey]
    this.logger = opts.logger
    this.allowPrivate = opts.allowPrivateNetwork
    this.owner = opts.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
    this.pollMs = opts.pollMs ?? 1000
    this.concurrency = Math.max(1, opts.concurrency ?? 16)
    this.leaseMs = opts.leaseMs ?? 60_000
    this.timeoutMs = opts.timeoutMs ?? 10_000
    this.maxAttempts = opts.maxAttempts ?? 10
    this.baseMs = opts.backoffBaseMs ?? 1000
    this.capMs = opts.backoffCapMs ?? 5 * 60_000
    this.random = opts.random ?? Math.random
    this.agent = createGuardedAgent({
      allowPrivate: this.allowPrivate,
      connectTimeoutMs: this.timeoutMs,
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
    })
  }

  /**
   * The up-front check of a webhook target: http(s), no credentials, no private literal address
   * or local name (unless private networks are allowed). Throws GatewayError 'bad_request', so a
   * run create with a bad webhook is rejected before the run exists.
   */
  validateUrl(url: string): URL {
    try {
      return assertPublicUrl(url, { allowPrivate: this.allowPrivate })
    } catch (err) {
      if (err instanceof GatewayError) throw new GatewayError('bad_request', `webhook ${err.message}`)
      throw err
    }
  }

  /**
   * Deliveries whose id starts with `prefix` get the headers `source` returns (they may replace
   * content-type, never the signature or id headers).
   */
  addHeaderSource(prefix: string, source: DeliveryHeaders): void {
    this.headerSources.set(prefix, source)
  }

  private async extraHeaders(d: ClaimedWebhookDelivery): Promise<Record<string, string> | null> {
    for (const [prefix, source] of this.headerSources) if (d.id.startsWith(prefix)) return source(d)
    return {}
  }

  /** Validates the target and writes the delivery to the outbox; the loop sends it. */
  async enqueue(ctx: CallContext, input: WebhookEnqueue): Promise<WebhookDeliveryRecord> {
    const url = this.validateUrl(input.url)
    let sealedSecret: string | undefined
    if (typeof input.secret === 'string') {
      if (!input.secret) throw new GatewayError('bad_request', 'webhook secret must not be empty')
      sealedSecret = sealWebhookSecret(this.master, input.secret)
    } else if (input.secret) {
      // Check it opens now rather than failing every attempt later.
      unseal(this.masterKeys, input.secret.sealed, WEBHOOK_SECRET_AAD)
      sealedSecret = input.secret.sealed
    }
    const payload = JSON.stringify(input.payload ?? null)
    const rec = await this.outbox.enqueue(ctx, {
      id: input.id ?? `whd_${randomBytes(16).toString('hex')}`,
      runId: input.runId,
      url: url.href,
      ...(sealedSecret ? { sealedSecret } : {}),
      payload,
    })
    this.kick()
    return rec
  }

  /** Starts the delivery loop. */
  start(): void {
    if (this.started || this.closed) return
    this.started = true
    this.timer = setInterval(() => this.kick(), this.pollMs)
    this.timer.unref()
    this.kick()
  }

  /** Stops the loop, waits for in-flight attempts to finish and closes connections. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.ticking
    await Promise.allSettled([...this.inFlight])
    await this.agent.close()
  }

  /** Runs a claim round now (or right after the current one). */
  private kick(): void {
    if (!this.started || this.closed) return
    if (this.ticking) {
      this.again = true
      return
    }
    this.ticking = this.tick().finally(() => {
      this.ticking = undefined
      if (this.again) {
        this.again = false
        this.kick()
      }
    })
  }

  private async tick(): Promise<void> {
    const room = this.concurrency - this.inFlight.size
    if (room <= 0) {
      this.backlog = true
      return
    }
    let claimed: ClaimedWebhookDelivery[]
    try {
      claimed = await this.outbox.claimDue(this.owner, Date.now(), room, this.leaseMs)
    } catch (err) {
      this.logger.error({ err: errorText(err) }, 'webhook outbox claim failed')
      return
    }
    this.backlog = claimed.length === room
    for (const d of claimed) {
      const p: Promise<void> = this.deliver(d).finally(() => {
        this.inFlight.delete(p)
        if (this.backlog) this.kick()
      })
      this.inFlight.add(p)
    }
  }

  /** Retry delay after attempt `n` (1-based): base·2^(n-1) capped, with equal jitter. */
  backoffMs(n: number): number {
    const exp = Math.min(this.capMs, this.baseMs * 2 ** Math.min(n - 1, 30))
    return Math.round(exp / 2 + (exp / 2) * this.random())
  }

  private async deliver(d: ClaimedWebhookDelivery): Promise<void> {
    const log = {
      delivery: d.id,
      tenant: d.tenant,
      runId: d.runId,
      attempt: d.attempt,
      target: originOf(d.url),
    }
    let secret: string
    try {
      secret = d.sealedSecret
        ? unseal(this.masterKeys, d.sealedSecret, WEBHOOK_SECRET_AAD)
        : webhookTenantSecret(this.master, d.tenant)
    } catch (err) {
      await this.record(
        d,
        { ok: false, error: `cannot open the signing secret: ${errorText(err)}`, retry: false },
        log,
      )
      return
    }
    const result = await this.attempt(d, secret)
    await this.record(d, result, log)
  }

  private async attempt(d: ClaimedWebhookDelivery, secret: string): Promise<Attempt> {
    try {
      // Checked again: the policy may have changed since the delivery was enqueued.
      assertPublicUrl(d.url, { allowPrivate: this.allowPrivate })
    } catch (err) {
      return { ok: false, error: errorText(err), retry: false }
    }
    let extra: Record<string, string> | null
    try {
      extra = await this.extraHeaders(d)
    } catch (err) {
      return { ok: false, error: `cannot build the delivery's headers: ${errorText(err)}`, retry: true }
    }
    if (extra === null)
      return { ok: false, error: 'withdrawn: the configuration of this delivery is gone', retry: false }
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      const res = await request(d.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'gatehouse-webhooks/1',
          ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k.toLowerCase(), v])),
          [WEBHOOK_ID_HEADER.toLowerCase()]: d.id,
          [SIGNATURE_HEADER.toLowerCase()]: signWebhook(secret, d.payload),
        },
        body: d.payload,
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      })
      // The body is not used: read a little (so the connection can be reused) and drop the rest.
      await res.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined)
      const s = res.statusCode
      if (s >= 200 && s < 300) return { ok: true, status: s }
      const retry = s === 408 || s === 429 || s >= 500
      const retryAfterMs = retry ? parseRetryAfter(res.headers['retry-after']) : undefined
      return {
        ok: false,
        error: s >= 300 && s < 400 ? `HTTP ${s} (redirects are not followed)` : `HTTP ${s}`,
        retry,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      }
    } catch (err) {
      if (err instanceof SsrfRefusedError) return { ok: false, error: err.message, retry: false }
      return {
        ok: false,
        error: signal.aborted ? `timed out after ${this.timeoutMs} ms` : errorText(err),
        retry: true,
      }
    }
  }

  private async record(d: ClaimedWebhookDelivery, r: Attempt, log: Record<string, unknown>): Promise<void> {
    try {
      if (r.ok) {
        const mine = await this.outbox.markDelivered(this.owner, d.id)
        this.logger.info(
          { ...log, status: r.status, ...(mine ? {} : { leaseLost: true }) },
          'webhook delivered',
        )
        return
      }
      const dead = !r.retry || d.attempt >= this.maxAttempts
      const delay =
        r.retryAfterMs !== undefined ? Math.min(r.retryAfterMs, this.capMs) : this.backoffMs(d.attempt)
      const next = dead ? null : Date.now() + delay
      await this.outbox.markFailed(this.owner, d.id, r.error, next)
      if (dead) this.logger.warn({ ...log, error: r.error }, 'webhook delivery failed permanently')
      else
        this.logger.info({ ...log, error: r.error, retryInMs: delay }, 'webhook delivery failed; will retry')
    } catch (err) {
      // The lease runs out and another round retries the delivery.
      this.logger.error({ ...log, err: errorText(err) }, 'webhook outbox update failed')
    }
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(invalid URL)'
  }
}

/** An error's message with its cause codes, never a stack or request headers. */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  const cause = (err as { cause?: unknown }).cause
  const causeText =
    cause instanceof Error ? `: ${(cause as { code?: unknown }).code ?? ''} ${cause.message}`.trimEnd() : ''
  return `${typeof code === 'string' ? `${code}: ` : ''}${err.message}${causeText}`
}
