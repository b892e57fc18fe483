import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { systemContext } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import { ibanValid, isUuid, luhnValid, Redactor } from '../../src/policy/redact.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import { AuditWriter, redactAudit } from '../../src/telemetry/audit.js'
import { Telemetry } from '../../src/telemetry/tracing.js'
import { httpConnector, mcpHeaders, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { startPolicyUpstream, type PolicyUpstream } from './upstream.js'

/** mulberry32: a small seeded PRNG, so every failure can be replayed from its seed. */
function rng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!
  const chars = (alphabet: string, n: number) => Array.from({ length: n }, () => pick([...alphabet])).join('')
  return { next, int, pick, chars }
}
type Rng = ReturnType<typeof rng>

const DIGITS = '0123456789'
const LOWER = 'abcdefghijklmnopqrstuvwxyz'
const ALNUM = LOWER + LOWER.toUpperCase() + DIGITS

function luhnDigit(body: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return String(d)
  throw new Error('unreachable')
}

/** Generators of values every detector must catch, in the shapes people write them. */
const GENERATORS: Record<string, (r: Rng) => string> = {
  email: (r) =>
    `${r.chars(LOWER, r.int(1, 8))}${r.pick(['', '.', '_', '+'])}${r.chars(LOWER + DIGITS, r.int(1, 6))}@${r.chars(LOWER, r.int(2, 10))}.${r.pick(['com', 'org', 'co.uk', 'io', 'de'])}`,
  phone: (r) =>
    r.pick([
      () => `+${r.int(1, 99)} ${r.chars(DIGITS, 3)} ${r.chars(DIGITS, 3)} ${r.chars(DIGITS, 4)}`,
      () => `+${r.int(1, 99)}-${r.chars(DIGITS, 2)}-${r.chars(DIGITS, 4)}-${r.chars(DIGITS, 4)}`,
      () => `(${r.chars(DIGITS, 3)}) ${r.chars(DIGITS, 3)}-${r.chars(DIGITS, 4)}`,
      () => `${r.chars(DIGITS, 3)}.${r.chars(DIGITS, 3)}.${r.chars(DIGITS, 4)}`,
    ])(),
  card: (r) => {
    const prefix = r.pick(['4', '51', '55', '6011'])
    const body = prefix + r.chars(DIGITS, 15 - prefix.length)
    const card = body + luhnDigit(body)
    const sep = r.pick(['', ' ', '-'])
    return sep ? card.match(/.{4}/g)!.join(sep) : card
  },
  iban: (r) => {
    const bban = r.chars(DIGITS, 18)
    for (let c = 2; c <= 98; c++) {
      const iban = `DE${String(c).padStart(2, '0')}${bban}`
      if (ibanValid(iban)) return r.next() < 0.5 ? iban : iban.match(/.{1,4}/g)!.join(' ')
    }
    throw new Error('unreachable')
  },
  ssn: (r) =>
    `${r.int(100, 665)}-${String(r.int(1, 99)).padStart(2, '0')}-${String(r.int(1, 9999)).padStart(4, '0')}`,
  secret: (r) =>
    r.pick([
      () => `ghp_${r.chars(ALNUM, 36)}`,
      () => `xoxb-${r.chars(DIGITS, 11)}-${r.chars(ALNUM, 24)}`,
      () => `sk-proj-${r.chars(ALNUM, 40)}`,
      () => `AKIA${r.chars('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`,
      () => `gk_${r.chars(ALNUM + '-_', 43)}`,
      () => `-----BEGIN PRIVATE KEY-----\n${r.chars(ALNUM + '+/', 64)}\n-----END PRIVATE KEY-----`,
      () => {
        // An unknown key: random, long, mixed. Regenerate the rare low-entropy draw.
        for (;;) {
          const s = r.chars(ALNUM + '+/', r.int(28, 48))
          if (/[0-9]/.test(s) && /[A-Za-z]/.test(s) && new Set(s).size > 20) return s
        }
      },
    ])(),
}

const WORDS = [
  'deploy',
  'the',
  'service',
  'to',
  'prod',
  'customer',
  'id',
  'note',
  'call',
  'ok',
  'v2',
  'at',
  'x',
]
const SEPS = [' ', ' ', ', ', ': ', ' (', ') ', '\n', '"', "='"]

/** Filler text with 1–3 sensitive values at random places; returns the text and the values. */
function sample(seed: number): { text: string; values: string[] } {
  const r = rng(seed)
  const parts: string[] = []
  const values: string[] = []
  const n = r.int(1, 3)
  for (let i = 0; i < n; i++) {
    for (let w = r.int(0, 4); w > 0; w--) parts.push(r.pick(WORDS), r.pick(SEPS))
    const v = GENERATORS[r.pick(Object.keys(GENERATORS))]!(r)
    values.push(v)
    parts.push(v, r.pick(SEPS))
  }
  parts.push(r.pick(WORDS))
  return { text: parts.join(''), values }
}

/** Every form of a value that must not survive: as written, and its bare digits for numbers. */
function forms(v: string): string[] {
  const out = [v]
  const digits = v.replace(/[^0-9]/g, '')
  if (/^[+()0-9 .-]+$/.test(v) && digits.length >= 9) out.push(digits)
  return out
}

const SEEDS = Array.from({ length: 500 }, (_, i) => 1000 + i)

describe('redaction detectors (property, seeded)', () => {
  for (const mode of ['mask', 'hash'] as const) {
    it(`leaves no generated value in any redacted text (${mode})`, () => {
      const r = new Redactor({ mode, hashKey: 'k' })
      for (const seed of SEEDS) {
        const { text, values } = sample(seed)
        const out = r.string(text)
        for (const v of values)
          for (const f of forms(v)) expect(out, `seed ${seed}: ${JSON.stringify(text)}`).not.toContain(f)
      }
    })
  }

  it('keeps ordinary text, ids, hashes and numbers', () => {
    const r = new Redactor()
    const keep = [
      'deploy api to prod at 2025-01-31',
      'run 3f2a1b4c-1234-4567-8901-123456789abc finished',
      'trace 4bf92f3577b34da6a3ce929d0e0e4736, args sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      'order 12345 of 2024, version 1.2.3, port 7420',
      'key_AbCdEfGh1234 revoked',
      'amount 4111 and 1111',
    ]
    for (const s of keep) expect(r.string(s)).toBe(s)
  })

  it('finds a high-entropy secret right after = (env lines, query strings), keeping the key', () => {
    const r = new Redactor()
    const secret = 'Zx9kQ2mN7pL4vB8cR1tY6wE3uI0oP5aS'
    expect(r.string(`API_TOKEN=${secret}`)).toBe('API_TOKEN=[secret]')
    expect(r.string(`/oauth/callback?code=${secret}&state=x`)).toBe('/oauth/callback?code=[secret]&state=x')
    expect(r.string(`token ${secret}==`)).toBe('token [secret]')
  })

  it('hash mode gives equal values equal pseudonyms', () => {
    const r = new Redactor({ mode: 'hash', hashKey: 'k' })
    const a = r.string('mail jane@example.com now')
    expect(a).toMatch(/^mail \[email:[0-9a-f]{12}\] now$/)
    expect(r.string('jane@example.com')).toBe(a.slice(5, -4))
    expect(r.string('john@example.com')).not.toBe(a.slice(5, -4))
  })

  it('national ids are configurable', () => {
    const r = new Redactor({
      detectors: ['national_id'],
      nationalIds: [{ name: 'nino', pattern: '\\b[A-Z]{2}\\d{6}[A-D]\\b' }],
    })
    expect(r.string('nino QQ123456C ok')).toBe('nino [nino] ok')
  })
})

describe('isUuid', () => {
  it('takes UUIDs of any case and nothing else (the regular expression it replaced, on samples)', () => {
    const re = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
    const uuid = '0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b'
    const samples = [uuid, uuid.toUpperCase(), '', 'x', uuid.slice(1), `${uuid}0`, uuid.replace('-', '0')]
    for (let i = 0; i < 36; i++) {
      for (const c of ['g', 'G', '-', '0', 'F', ' ', '/', ':', '@', '`', '\u00e9']) {
        samples.push(uuid.slice(0, i) + c + uuid.slice(i + 1))
      }
    }
    for (const s of samples) expect(isUuid(s), s).toBe(re.test(s))
  })
})

describe('memoized redaction', () => {
  it('answers exactly as string() does, for repeated, evicted and long strings', () => {
    const redactor = new Redactor({ mode: 'hash', hashKey: 'k' })
    const memo = redactor.memoized(8)
    const texts = SEEDS.slice(0, 60).map((seed) => sample(seed).text)
    const long = `${'x'.repeat(300)} mail me at someone@example.org`
    for (const t of [...texts, ...texts.slice(0, 20), long, long, ...texts]) {
      expect(memo(t)).toBe(redactor.string(t))
    }
    expect(memo(long)).toContain('[email:')
  })
})

describe('audit rows: which redaction each field takes', () => {
  it('request ids (never repeated) bypass the memo; opaque fields are not redacted at all', () => {
    const memo: string[] = []
    const once: string[] = []
    const row = redactAudit(
      {
        id: 'id-1',
        tenant: 'default',
        at: '2026-11-24T00:00:00.000Z',
        principal: 'key-1',
        principalKind: 'service',
        action: 'tool.call',
        target: 'crm/find',
        outcome: 'error',
        errorCode: 'tool_error',
        argsHash: 'ab'.repeat(32),
        requestId: 'req-1',
        traceId: 'cd'.repeat(16),
      },
      (s) => (memo.push(s), s.toUpperCase()),
      (s) => (once.push(s), `once:${s}`),
    )
    expect(once).toEqual(['req-1'])
    expect(memo.sort()).toEqual(['crm/find', 'key-1', 'tool.call', 'tool_error'])
    expect(row).toMatchObject({
      requestId: 'once:req-1',
      principal: 'KEY-1',
      id: 'id-1',
      argsHash: 'ab'.repeat(32),
    })
  })
})

describe('audit rows, spans and logs never keep a detected value (property, seeded)', () => {
  it('scrubs what reaches the audit store, the span store and the log', async () => {
    const store = openSqliteStore({ path: ':memory:' })
    await store.tenants.ensure(systemContext(), 'default')
    const redactor = new Redactor({ mode: 'hash', hashKey: 'k' })
    // As the gateway does it: memoized (a small memo here, so entries are evicted and redone).
    const scrub = redactor.memoized(64)
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk))
        cb()
      },
    })
    const logger = createLogger('debug', sink)
    const audit = new AuditWriter({
      store: store.audit,
      logger,
      mode: 'batch',
      flushMs: 10_000,
      redact: scrub,
      redactOnce: (s) => redactor.string(s),
    })
    const telemetry = new Telemetry({ spans: store.spans, logger, flushMs: 10_000, redact: scrub })
    const all: string[] = []
    for (const seed of SEEDS.slice(0, 150)) {
      const { text, values } = sample(seed)
      all.push(...values.flatMap(forms))
      void audit.write({
        id: `a${seed}`,
        tenant: 'default',
        at: new Date().toISOString(),
        principal: `user:${text}`,
        principalKind: 'user',
        action: 'tool.call',
        target: `crm/${text}`,
        outcome: 'error',
        errorCode: text,
        requestId: text.slice(0, 128),
      })
      const span = telemetry.tracer.startSpan(`tools/call ${text}`, {
        attributes: { 'gatehouse.tenant': 'default', 'gatehouse.principal': text, 'x.n': seed },
      })
      span.end()
      logger.error(
        { err: new Error(`upstream said ${text}`), detail: { nested: [text] }, text },
        `call failed: ${text}`,
      )
    }
    await audit.flush()
    await telemetry.flush()
    const rows = JSON.stringify((await store.audit.list(systemContext(), { limit: 1000 })).items)
    const spans = JSON.stringify(await store.spans.recent(systemContext(), 1000))
    const log = lines.join('')
    expect(rows.length).toBeGreaterThan(1000)
    expect(spans.length).toBeGreaterThan(1000)
    expect(log.length).toBeGreaterThan(1000)
    for (const v of all) {
      expect(rows, 'audit').not.toContain(JSON.stringify(v).slice(1, -1))
      expect(spans, 'spans').not.toContain(JSON.stringify(v).slice(1, -1))
      expect(log, 'log').not.toContain(JSON.stringify(v).slice(1, -1))
    }
    // The redaction is visible, not a silent drop.
    expect(rows).toMatch(/\[(email|card|phone|iban|us_ssn|secret|private_key):[0-9a-f]{12}\]/)
    expect(log).toMatch(/\[(email|card|phone|iban|us_ssn|secret|private_key)\]/)
    await audit.close()
    await telemetry.close()
    await store.close()
  })
})

describe('redaction policy on calls (gateway)', () => {
  let up: PolicyUpstream
  let t: TestGateway
  beforeAll(async () => {
    up = await startPolicyUpstream()
    t = await startTestGateway()
    await t.apply(
      httpConnector('crm', up.url) +
        '---\n' +
        httpConnector('open', up.url) +
        `---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: no-pii-leaves }
spec:
  redaction:
    match: { connector: crm }
    detectors: [email, phone, payment_card, iban, secret]
    mode: mask
    apply_to: [arguments, results]
`,
    )
  })
  afterAll(async () => {
    await t?.close()
    await up?.close()
  })

  it('masks arguments before they leave and results before they reach the caller', async () => {
    const c = await t.client()
    const r = await c.callTool({
      name: 'crm__echo',
      arguments: { text: 'mail jane@example.com or +44 20 7946 0958' },
    })
    expect(up.calls.at(-1)!.args).toEqual({ text: 'mail [email] or [phone]' })
    expect(textOf(r)).toBe('mail [email] or [phone]')
    const l = await c.callTool({ name: 'crm__lookup', arguments: {} })
    expect(textOf(l)).toBe('customer [email], card [card], phone [phone]')
    // Another connector of the tenant is not matched by the policy.
    const o = await c.callTool({ name: 'open__echo', arguments: { text: 'jane@example.com' } })
    expect(textOf(o)).toBe('jane@example.com')
  })

  it('keeps a card number sent as a request id out of the audit log', async () => {
    const rid = '4111-1111-1111-1111'
    const body = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'open__get_issue', arguments: { n: 1 } },
    }
    const res = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: mcpHeaders({
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'open__get_issue',
        'x-request-id': rid,
      }),
      body: JSON.stringify({
        ...body,
        params: { ...body.params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
      }),
    })
    expect(res.status).toBe(200)
    let rows: any[] = []
    await expect
      .poll(async () => {
        rows = (await t.api('GET', '/v1/audit?action=tool.call')).body.items
        return rows.some((a) => a.target === 'open/get_issue')
      })
      .toBe(true)
    expect(JSON.stringify(rows)).not.toContain(rid)
    expect(rows.find((a) => a.target === 'open/get_issue').requestId).toMatch(/^\[card:[0-9a-f]{12}\]$/)
  })
})
