import { hkdfSync, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, type CallContext } from '../../src/context.js'
import { GatewayError } from '../../src/errors.js'
import { createLogger } from '../../src/log.js'
import type { LookupFunction } from '../../src/net/ssrf.js'
import {
  parseRetryAfter,
  sealWebhookSecret,
  signWebhook,
  verifyWebhookSignature,
  webhookTenantSecret,
  WebhookSender,
  type WebhookSenderOptions,
} from '../../src/runs/webhooks.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { Store, WebhookDeliveryRecord } from '../../src/store/types.js'
import { masterKeyFrom, type MasterKey } from '../../src/vault/master-key.js'

const SECRET = 'whsec_run_secret_5f3c9a1e7b'
const PAYLOAD = { id: 'run-1', status: 'succeeded', agent: 'echo', output: { text: 'hi' } }

interface Received {
  path: string
  headers: IncomingMessage['headers']
  body: string
  at: number
}

type Responder = (req: IncomingMessage, res: ServerResponse, n: number) => void

/** A loopback HTTP receiver answering each request with the next responder (the last one repeats). */
class Receiver {
  readonly requests: Received[] = []
  private responders: Responder[] = [(_q, res) => res.end('ok')]
  private server!: Server
  url = ''

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const n = this.requests.length
        this.requests.push({
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        })
        const responder = this.responders[Math.min(n, this.responders.length - 1)]!
        responder(req, res, n)
      })
    })
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`
    return this
  }

  respond(...responders: Responder[]): void {
    this.responders = responders
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((r) => this.server.close(r))
  }
}

const status =
  (code: number, headers: Record<string, string> = {}): Responder =>
  (_q, res) => {
    res.writeHead(code, headers)
    res.end(`status ${code}`)
  }

async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('webhook signatures', () => {
  it('sign/verify round trip; wrong secret, tampered body, stale or malformed header fail', () => {
    const body = JSON.stringify(PAYLOAD)
    const now = 1_700_000_000
    const header = signWebhook(SECRET, body, now)
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/)
    expect(verifyWebhookSignature(SECRET, header, body, 300, now)).toBe(true)
    expect(verifyWebhookSignature(SECRET, header, Buffer.from(body), 300, now + 299)).toBe(true)
    expect(verifyWebhookSignature('wrong-secret', header, body, 300, now)).toBe(false)
    expect(verifyWebhookSignature(SECRET, header, body.replace('succeeded', 'failed'), 300, now)).toBe(false)
    expect(verifyWebhookSignature(SECRET, header, body, 300, now + 301)).toBe(false)
    expect(verifyWebhookSignature(SECRET, header, body, 300, now - 301)).toBe(false)
    expect(
      verifyWebhookSignature(SECRET, header.replace('t=1700000000', 't=1700000001'), body, 300, now),
    ).toBe(false)
    for (const bad of ['', 'garbage', 't=abc,v1=00', `v1=${'0'.repeat(64)}`, 't=1700000000', undefined, null])
      expect(verifyWebhookSignature(SECRET, bad, body, 300, now)).toBe(false)
    // Several v1 values (e.g. during a secret rotation): any match verifies.
    const other = signWebhook('old-secret', body, now).split(',')[1]
    expect(verifyWebhookSignature(SECRET, `${header},${other}`, body, 300, now)).toBe(true)
    expect(verifyWebhookSignature('old-secret', `${header},${other}`, body, 300, now)).toBe(true)
  })

  it('the tenant secret is HKDF-SHA256 of the master key with info "gatehouse webhook v1 <tenant>"', () => {
    const master = masterKeyFrom(randomBytes(32))
    const expected = Buffer.from(
      hkdfSync('sha256', master.key, Buffer.alloc(0), Buffer.from('gatehouse webhook v1 acme'), 32),
    ).toString('hex')
    expect(webhookTenantSecret(master, 'acme')).toBe(expected)
    expect(webhookTenantSecret(master, 'globex')).not.toBe(expected)
    expect(webhookTenantSecret(masterKeyFrom(randomBytes(32)), 'acme')).not.toBe(expected)
  })

  it('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000)
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000)
    expect(parseRetryAfter('soon')).toBeUndefined()
    expect(parseRetryAfter(undefined)).toBeUndefined()
  })
})

describe('WebhookSender', () => {
  let dir: string
  let master: MasterKey
  let receiver: Receiver
  let logs: string[]
  const stores: Store[] = []
  const senders: WebhookSender[] = []
  const acme: CallContext = createContext({ tenant: 'acme', principal: { kind: 'service', id: 'k1' } })

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-webhooks-'))
    master = masterKeyFrom(randomBytes(32))
    receiver = await new Receiver().start()
    logs = []
  })
  afterEach(async () => {
    await Promise.all(senders.splice(0).map((s) => s.close()))
    await Promise.all(stores.splice(0).map((s) => s.close()))
    await receiver.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const dbPath = (): string => join(dir, 'gatehouse.db')
  function openStore(): Store {
    const s = openSqliteStore({ path: dbPath() })
    stores.push(s)
    return s
  }
  function sender(store: Store, opts: Partial<WebhookSenderOptions> = {}): WebhookSender {
    const logStream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString('utf8'))
        cb()
      },
    })
    const s = new WebhookSender({
      outbox: store.webhooks,
      masterKey: master,
      logger: createLogger('trace', logStream),
      allowPrivateNetwork: true,
      pollMs: 20,
      backoffBaseMs: 100,
      backoffCapMs: 5000,
      random: () => 0.5,
      ...opts,
    })
    senders.push(s)
    return s
  }
  async function deliveries(store: Store): Promise<WebhookDeliveryRecord[]> {
    return store.webhooks.list(acme)
  }
  async function settled(store: Store, id: string): Promise<WebhookDeliveryRecord> {
    return waitFor(`delivery ${id} to settle`, async () => {
      const d = (await deliveries(store)).find((x) => x.id === id)
      return d && d.status !== 'pending' ? d : undefined
    })
  }

  it('POSTs the JSON payload with id and a signature that verifies with the run secret only', async () => {
    const store = openStore()
    const s = sender(store)
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, secret: SECRET, runId: 'run-1', payload: PAYLOAD })
    expect(rec).toMatchObject({ status: 'pending', runId: 'run-1', hasSecret: true, tenant: 'acme' })
    expect((await settled(store, rec.id)).status).toBe('delivered')
    expect(receiver.requests).toHaveLength(1)
    const [req] = receiver.requests
    expect(req!.headers['content-type']).toBe('application/json')
    expect(req!.headers['gatehouse-webhook-id']).toBe(rec.id)
    expect(JSON.parse(req!.body)).toEqual(PAYLOAD)
    const sig = String(req!.headers['gatehouse-signature'])
    expect(sig).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/)
    expect(Math.abs(Number(/t=(\d+)/.exec(sig)![1]) - Date.now() / 1000)).toBeLessThan(30)
    expect(verifyWebhookSignature(SECRET, sig, req!.body, 300)).toBe(true)
    expect(verifyWebhookSignature('not-the-secret', sig, req!.body, 300)).toBe(false)
    expect(verifyWebhookSignature(webhookTenantSecret(master, 'acme'), sig, req!.body, 300)).toBe(false)
  })

  it('without a run secret, signs with the tenant key derived from the master key', async () => {
    const store = openStore()
    const s = sender(store)
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-2', payload: PAYLOAD })
    expect(rec.hasSecret).toBe(false)
    await settled(store, rec.id)
    const [req] = receiver.requests
    const sig = String(req!.headers['gatehouse-signature'])
    expect(verifyWebhookSignature(webhookTenantSecret(master, 'acme'), sig, req!.body, 300)).toBe(true)
    expect(verifyWebhookSignature(webhookTenantSecret(master, 'globex'), sig, req!.body, 300)).toBe(false)
  })

  it('accepts a secret sealed with sealWebhookSecret; refuses one sealed for another use', async () => {
    const store = openStore()
    const s = sender(store)
    s.start()
    const rec = await s.enqueue(acme, {
      url: receiver.url,
      secret: { sealed: sealWebhookSecret(master, SECRET) },
      runId: 'run-3',
      payload: PAYLOAD,
    })
    await settled(store, rec.id)
    const [req] = receiver.requests
    expect(verifyWebhookSignature(SECRET, String(req!.headers['gatehouse-signature']), req!.body, 300)).toBe(
      true,
    )
    const { seal } = await import('../../src/vault/seal.js')
    await expect(
      s.enqueue(acme, {
        url: receiver.url,
        secret: { sealed: seal(master, SECRET) },
        runId: 'r',
        payload: {},
      }),
    ).rejects.toThrow(/failed authentication/)
  })

  it('retries after 500s with growing backoff, then succeeds; the delivery id is the same each time', async () => {
    receiver.respond(status(500), status(502), status(200))
    const store = openStore()
    const s = sender(store)
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, secret: SECRET, runId: 'run-1', payload: PAYLOAD })
    const done = await settled(store, rec.id)
    expect(done).toMatchObject({ status: 'delivered', attempts: 3 })
    expect(receiver.requests).toHaveLength(3)
    expect(new Set(receiver.requests.map((r) => r.headers['gatehouse-webhook-id']))).toEqual(
      new Set([rec.id]),
    )
    expect(new Set(receiver.requests.map((r) => r.body)).size).toBe(1)
    for (const r of receiver.requests)
      expect(verifyWebhookSignature(SECRET, String(r.headers['gatehouse-signature']), r.body, 300)).toBe(true)
    // base 100 ms doubling, equal jitter at 0.5: 75 ms then 150 ms.
    const [a, b, c] = receiver.requests.map((r) => r.at)
    expect(b! - a!).toBeGreaterThanOrEqual(70)
    expect(c! - b!).toBeGreaterThanOrEqual(145)
    expect(s.backoffMs(1)).toBe(75)
    expect(s.backoffMs(2)).toBe(150)
    expect(s.backoffMs(30)).toBe(3750) // capped at 5000, jittered
  })

  it('410 is dead after one attempt, no retry', async () => {
    receiver.respond(status(410))
    const store = openStore()
    const s = sender(store, { backoffBaseMs: 10 })
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    const dead = await settled(store, rec.id)
    expect(dead).toMatchObject({ status: 'dead', attempts: 1, lastError: 'HTTP 410' })
    await sleep(300)
    expect(receiver.requests).toHaveLength(1)
  })

  it('honours Retry-After on 429', async () => {
    receiver.respond(status(429, { 'retry-after': '1' }), status(204))
    const store = openStore()
    const s = sender(store, { backoffBaseMs: 10 })
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    await waitFor('first attempt', () => receiver.requests.length === 1)
    await sleep(500)
    // Without Retry-After the retry would have come after ~10 ms.
    expect(receiver.requests).toHaveLength(1)
    expect((await settled(store, rec.id)).status).toBe('delivered')
    const [a, b] = receiver.requests.map((r) => r.at)
    expect(b! - a!).toBeGreaterThanOrEqual(990)
  })

  it('retries 408, dropped connections and timeouts; gives up after maxAttempts', async () => {
    receiver.respond(
      status(408),
      (req) => req.socket.destroy(),
      () => undefined, // never answers: the attempt times out
      status(200),
    )
    const store = openStore()
    const s = sender(store, { backoffBaseMs: 10, timeoutMs: 300 })
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    expect(await settled(store, rec.id)).toMatchObject({ status: 'delivered', attempts: 4 })
    expect(receiver.requests).toHaveLength(4)

    receiver.respond(status(503))
    const s2 = sender(store, { backoffBaseMs: 10, maxAttempts: 3 })
    await s.close()
    s2.start()
    const rec2 = await s2.enqueue(acme, { url: receiver.url, runId: 'run-2', payload: PAYLOAD })
    expect(await settled(store, rec2.id)).toMatchObject({
      status: 'dead',
      attempts: 3,
      lastError: 'HTTP 503',
    })
    expect(receiver.requests.filter((r) => r.headers['gatehouse-webhook-id'] === rec2.id)).toHaveLength(3)
  })

  it('never follows redirects', async () => {
    receiver.respond(status(302, { location: '/elsewhere' }))
    const store = openStore()
    const s = sender(store, { backoffBaseMs: 10 })
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    expect(await settled(store, rec.id)).toMatchObject({ status: 'dead', attempts: 1 })
    await sleep(100)
    expect(receiver.requests.map((r) => r.path)).toEqual(['/hook'])
  })

  it('durable: a delivery enqueued before close is sent by a new sender over the same file', async () => {
    const store1 = openStore()
    const s1 = sender(store1) // never started: closes before delivering
    const rec = await s1.enqueue(acme, {
      url: receiver.url,
      secret: SECRET,
      runId: 'run-1',
      payload: PAYLOAD,
    })
    await s1.close()
    await store1.close()
    await sleep(100)
    expect(receiver.requests).toHaveLength(0)

    const store2 = openStore()
    const s2 = sender(store2)
    s2.start()
    expect((await settled(store2, rec.id)).status).toBe('delivered')
    expect(receiver.requests).toHaveLength(1)
    const [req] = receiver.requests
    expect(req!.headers['gatehouse-webhook-id']).toBe(rec.id)
    expect(verifyWebhookSignature(SECRET, String(req!.headers['gatehouse-signature']), req!.body, 300)).toBe(
      true,
    )
  })

  it('a sender that died mid-delivery: the lease expires and another sender delivers', async () => {
    const store = openStore()
    const s = sender(store)
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    const claimedAt = Date.now()
    const [claimed] = await store.webhooks.claimDue('crashed-sender', claimedAt, 10, 1500)
    expect(claimed?.id).toBe(rec.id)
    s.start()
    await sleep(300)
    if (Date.now() - claimedAt < 1400) expect(receiver.requests).toHaveLength(0)
    expect(await settled(store, rec.id)).toMatchObject({ status: 'delivered', attempts: 2 })
    expect(receiver.requests).toHaveLength(1)
    expect(receiver.requests[0]!.at - claimedAt).toBeGreaterThanOrEqual(1500)
  })

  it('two senders over one file deliver each webhook exactly once', async () => {
    receiver.respond((_q, res) => setTimeout(() => res.end('ok'), 15))
    const storeA = openStore()
    const storeB = openStore()
    const a = sender(storeA, { concurrency: 3 })
    const b = sender(storeB, { concurrency: 3 })
    expect(a.owner).not.toBe(b.owner)
    const ids: string[] = []
    for (let i = 0; i < 24; i++)
      ids.push(
        (await (i % 2 ? a : b).enqueue(acme, { url: receiver.url, runId: `run-${i}`, payload: { i } })).id,
      )
    a.start()
    b.start()
    await waitFor('all delivered', async () =>
      (await deliveries(storeA)).every((d) => d.status === 'delivered'),
    )
    await sleep(200)
    const seen = receiver.requests.map((r) => String(r.headers['gatehouse-webhook-id']))
    expect(seen).toHaveLength(24)
    expect(new Set(seen)).toEqual(new Set(ids))
    expect((await deliveries(storeB)).every((d) => d.attempts === 1)).toBe(true)
  })

  it('sends at most `concurrency` deliveries at once, and drains the backlog', async () => {
    let open = 0
    let peak = 0
    receiver.respond((_q, res) => {
      peak = Math.max(peak, ++open)
      setTimeout(() => {
        open--
        res.end('ok')
      }, 40)
    })
    const store = openStore()
    const s = sender(store, { concurrency: 2, pollMs: 5000 })
    for (let i = 0; i < 7; i++)
      await s.enqueue(acme, { url: receiver.url, runId: `run-${i}`, payload: { i } })
    s.start()
    // pollMs is long: draining relies on freed slots claiming the next deliveries.
    await waitFor('all delivered', async () =>
      (await deliveries(store)).every((d) => d.status === 'delivered'),
    )
    expect(receiver.requests).toHaveLength(7)
    expect(peak).toBe(2)
  })

  it('close() waits for in-flight deliveries', async () => {
    receiver.respond((_q, res) => setTimeout(() => res.end('ok'), 300))
    const store = openStore()
    const s = sender(store)
    s.start()
    const rec = await s.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
    await waitFor('request received', () => receiver.requests.length === 1)
    await s.close()
    expect((await deliveries(store)).find((d) => d.id === rec.id)?.status).toBe('delivered')
  })

  describe('SSRF guard', () => {
    it('refuses private targets at enqueue (bad_request, nothing stored) unless private networks are allowed', async () => {
      const store = openStore()
      const s = sender(store, { allowPrivateNetwork: false })
      for (const url of [
        receiver.url,
        'http://10.0.0.7/hook',
        'http://169.254.169.254/latest/meta-data/',
        'http://[::1]:8080/',
        'http://[::ffff:127.0.0.1]/',
        'http://[fd00::1]/',
        'http://localhost:8080/',
      ]) {
        const err = await s.enqueue(acme, { url, runId: 'run-1', payload: PAYLOAD }).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err, url).toBeInstanceOf(GatewayError)
        expect((err as GatewayError).code).toBe('bad_request')
        expect((err as GatewayError).message).toMatch(
          /^webhook URL .* refused: .*GATEHOUSE_ALLOW_PRIVATE_NETWORK=1/,
        )
        expect(() => s.validateUrl(url)).toThrow(GatewayError)
      }
      await expect(s.enqueue(acme, { url: 'ftp://example.com/', runId: 'r', payload: {} })).rejects.toThrow(
        /only http and https/,
      )
      expect(await deliveries(store)).toEqual([])
      // Allowed: the same loopback target is accepted and delivered.
      const open = sender(store, { allowPrivateNetwork: true })
      open.start()
      const rec = await open.enqueue(acme, { url: receiver.url, runId: 'run-1', payload: PAYLOAD })
      expect((await settled(store, rec.id)).status).toBe('delivered')
      // Credentials in the URL are refused even then.
      await expect(
        open.enqueue(acme, { url: 'http://u:p@127.0.0.1/', runId: 'r', payload: {} }),
      ).rejects.toThrow(/credentials/)
    })

    it('a name that resolves to loopback passes enqueue but is refused at connect time, without retries', async () => {
      const port = new URL(receiver.url).port
      const lookup: LookupFunction = (_host, options, cb) =>
        options.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)
      const store = openStore()
      const s = sender(store, { allowPrivateNetwork: false, lookup, backoffBaseMs: 10 })
      s.start()
      const rec = await s.enqueue(acme, {
        url: `http://hooks.example.test:${port}/hook`,
        runId: 'run-1',
        payload: PAYLOAD,
      })
      const dead = await settled(store, rec.id)
      expect(dead).toMatchObject({ status: 'dead', attempts: 1 })
      expect(dead.lastError).toMatch(/hooks\.example\.test resolved to 127\.0\.0\.1, which is loopback/)
      expect(receiver.requests).toHaveLength(0)
    })
  })

  it('secrets and signatures never reach the logs or the database in plaintext', async () => {
    receiver.respond(status(500), status(200))
    const store = openStore()
    const s = sender(store, { backoffBaseMs: 10 })
    s.start()
    const a = await s.enqueue(acme, { url: receiver.url, secret: SECRET, runId: 'run-1', payload: PAYLOAD })
    const b = await s.enqueue(acme, { url: receiver.url, runId: 'run-2', payload: PAYLOAD })
    await settled(store, a.id)
    await settled(store, b.id)
    await s.close()
    const text = logs.join('')
    expect(text).toContain('webhook delivered')
    expect(text).toContain('will retry')
    const signatures = receiver.requests.map((r) => String(r.headers['gatehouse-signature']))
    expect(signatures.length).toBeGreaterThanOrEqual(3)
    for (const needle of [
      SECRET,
      webhookTenantSecret(master, 'acme'),
      ...signatures.map((x) => x.split('v1=')[1]!),
    ])
      expect(text).not.toContain(needle)
    expect(JSON.stringify(await deliveries(store))).not.toContain(SECRET)
    for (const f of [dbPath(), `${dbPath()}-wal`])
      if (existsSync(f)) expect(readFileSync(f).includes(Buffer.from(SECRET))).toBe(false)
  })
})
