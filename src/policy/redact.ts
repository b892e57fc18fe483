import { createHmac } from 'node:crypto'
import { LRUCache } from 'lru-cache'

/**
 * PII and secret detectors, and a redactor that masks or hashes what they find in strings and
 * JSON values. Used by policy on arguments and results, and always on audit rows, spans and logs.
 * Every detector is a regular expression plus, where one exists, a checksum (Luhn for cards,
 * mod-97 for IBANs) or a score (entropy for unknown secrets), so ordinary numbers and ids survive.
 */

export type DetectorName = 'email' | 'phone' | 'payment_card' | 'iban' | 'national_id' | 'secret'
export const ALL_DETECTORS: readonly DetectorName[] = [
  'secret',
  'payment_card',
  'iban',
  'email',
  'national_id',
  'phone',
]

export interface NationalIdFormat {
  name: string
  pattern: string
}

/** Used when the national_id detector is on and no formats are configured. */
export const DEFAULT_NATIONAL_IDS: readonly NationalIdFormat[] = [
  { name: 'us_ssn', pattern: '\\b(?!000|666|9\\d\\d)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}\\b' },
]

export interface RedactorOptions {
  detectors?: readonly DetectorName[]
  nationalIds?: readonly NationalIdFormat[]
  /** `mask`: `[email]`; `hash`: `[email:<12 hex of an HMAC>]`, equal values give equal hashes. */
  mode?: 'mask' | 'hash'
  /** HMAC key for `hash` mode. */
  hashKey?: string | Buffer
}

interface Detector {
  label: string
  re: RegExp
  /** Extra check on a regex match (checksum, score); absent: every match counts. */
  accept?(match: string): boolean
  /** A rejected match may hold a valid value followed by more (`IBAN 605-…`): try its shorter prefixes. */
  shrink?: boolean
}

export function luhnValid(digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (d < 0 || d > 9) return false
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

export function ibanValid(raw: string): boolean {
  const s = raw.replace(/ /g, '').toUpperCase()
  if (s.length < 15 || s.length > 34 || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(s)) return false
  const moved = s.slice(4) + s.slice(0, 4)
  let rem = 0
  for (const ch of moved) {
    const v = ch >= 'A' ? String(ch.charCodeAt(0) - 55) : ch
    for (const d of v) rem = (rem * 10 + (d.charCodeAt(0) - 48)) % 97
  }
  return rem === 1
}

/** Shannon entropy in bits per character. */
export function entropy(s: string): number {
  const counts = new Map<string, number>()
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1)
  let h = 0
  for (const n of counts.values()) {
    const p = n / s.length
    h -= p * Math.log2(p)
  }
  return h
}

/** Prefixes of well-known credentials (GitHub, Slack, OpenAI, Stripe, AWS, Google, GitLab, npm, Gatehouse). */
const SECRET_PREFIXES =
  '(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}' +
  '|sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|(?:AKIA|ASIA)[0-9A-Z]{16}' +
  '|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{30,}|gk_[A-Za-z0-9_-]{30,}' +
  '|eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,})'

const PRIVATE_KEY = '-----BEGIN [A-Z ]*PRIVATE KEY-----[\\s\\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)'

/** Long tokens with letters and digits and high entropy (random keys); hex ids and hashes stay (≤ 4 bits/char). */
const HIGH_ENTROPY_MIN = 24
function highEntropy(tok: string): boolean {
  if (tok.length < HIGH_ENTROPY_MIN) return false
  if (!/[0-9]/.test(tok) || !/[A-Za-z]/.test(tok)) return false
  return entropy(tok) >= 4.2
}

function buildDetectors(names: ReadonlySet<DetectorName>, ids: readonly NationalIdFormat[]): Detector[] {
  const out: Detector[] = []
  if (names.has('secret')) {
    out.push({ label: 'private_key', re: new RegExp(PRIVATE_KEY, 'g') })
    out.push({ label: 'secret', re: new RegExp(`(?<![A-Za-z0-9_])${SECRET_PREFIXES}`, 'g') })
    out.push({
      label: 'secret',
      // `=` may come before a token (KEY=…, ?code=…); after one it is only its padding.
      re: /(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])/g,
      accept: highEntropy,
    })
  }
  if (names.has('payment_card')) {
    out.push({
      label: 'card',
      // Not inside a dashed id (UUIDs): no letter, digit or dash right before or after.
      re: /(?<![0-9A-Za-z-])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z-])/g,
      accept: (m) => {
        const d = m.replace(/[ -]/g, '')
        return d.length >= 13 && d.length <= 19 && luhnValid(d)
      },
      shrink: true,
    })
  }
  if (names.has('iban')) {
    out.push({
      label: 'iban',
      re: /(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])/g,
      accept: ibanValid,
      shrink: true,
    })
  }
  if (names.has('email')) {
    out.push({
      label: 'email',
      re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g,
    })
  }
  if (names.has('national_id')) {
    for (const f of ids) out.push({ label: f.name, re: new RegExp(f.pattern, 'gu') })
  }
  if (names.has('phone')) {
    out.push({
      label: 'phone',
      re: /(?<![\w+.-])(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){2,5}(?![\w-]|\.[0-9])/g,
      accept: (m) => {
        const digits = m.replace(/[^0-9]/g, '').length
        if (/^\d{4}-\d{2}-\d{2}$/.test(m)) return false // a date
        // International form, or a separated national form; bare digit runs are not phones.
        if (m.startsWith('+')) return digits >= 8 && digits <= 15
        return digits >= 9 && digits <= 15 && /[ .()-]/.test(m)
      },
      shrink: true,
    })
  }
  return out
}

/**
 * A quick filter for the built-in detectors: a string without an `@`, a run of digits with
 * separators, a PEM header or a 15-character token cannot hold a detectable value. (Custom
 * national id formats can match anything, so with those every string is scanned.)
 */
const MAY_HOLD = /@|[0-9][0-9 ().+-]{4,}[0-9]|-----BEGIN|[A-Za-z0-9+/_.-]{15}/
/**
 * Ids the gateway makes (UUIDs, any case) hold nothing to find. A loop over the 36 characters:
 * the equivalent regular expression cost ~0.3 µs per request id.
 */
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45 /* - */) return false
    } else if (!((c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102))) return false
  }
  return true
}

/** Strings redacted through `scrubForLog` by default: every detector, masked. */
let defaultRedactor: Redactor | undefined

/**
 * A deep copy of a log argument with detected values replaced: strings, arrays, plain objects and
 * errors (as `{type, message, stack}`); anything else as it is.
 */
export function scrubForLog(
  v: unknown,
  r: Redactor = (defaultRedactor ??= new Redactor()),
  depth = 0,
): unknown {
  if (typeof v === 'string') return r.string(v)
  if (v === null || typeof v !== 'object' || depth > 8) return v
  if (v instanceof Error) {
    const code = (v as { code?: unknown }).code
    return {
      type: v.name,
      message: r.string(v.message),
      ...(v.stack ? { stack: r.string(v.stack) } : {}),
      ...(code !== undefined ? { code } : {}),
    }
  }
  if (Array.isArray(v)) return v.map((x) => scrubForLog(x, r, depth + 1))
  const proto = Object.getPrototypeOf(v) as unknown
  if (proto !== Object.prototype && proto !== null) return v
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = scrubForLog(x, r, depth + 1)
  return out
}

/** Finds and replaces detected values in strings and JSON values. Built once; safe to share. */
export class Redactor {
  private readonly detectors: Detector[]
  private readonly mode: 'mask' | 'hash'
  private readonly key: string | Buffer
  private readonly quick: RegExp | undefined

  constructor(opts: RedactorOptions = {}) {
    const names = new Set(opts.detectors ?? ALL_DETECTORS)
    const ids = opts.nationalIds?.length ? opts.nationalIds : DEFAULT_NATIONAL_IDS
    this.quick = opts.nationalIds?.length && names.has('national_id') ? undefined : MAY_HOLD
    this.detectors = buildDetectors(names, ids)
    this.mode = opts.mode ?? 'mask'
    this.key = opts.hashKey ?? 'gatehouse-redaction'
  }

  private replacement(label: string, value: string): string {
    if (this.mode === 'mask') return `[${label}]`
    const h = createHmac('sha256', this.key).update(value).digest('hex').slice(0, 12)
    return `[${label}:${h}]`
  }

  /** The string with every detected value replaced. */
  string(s: string): string {
    // UUIDs (request ids, minted on every request) first: they never hold a detected value.
    if (s.length < 6 || isUuid(s) || (this.quick && !this.quick.test(s))) return s
    let out = s
    for (const d of this.detectors) {
      d.re.lastIndex = 0
      if (!d.re.test(out)) continue
      d.re.lastIndex = 0
      out = out.replace(d.re, (m) => this.replaceMatch(d, m))
    }
    return out
  }

  private replaceMatch(d: Detector, m: string): string {
    if (!d.accept || d.accept(m)) return this.replacement(d.label, m)
    if (d.shrink) {
      // The longest prefix that ends on a group boundary and passes the check.
      for (let end = m.length - 1; end >= 8; end--) {
        if (!/[0-9A-Za-z)]/.test(m[end - 1]!) || /[0-9A-Za-z]/.test(m[end]!)) continue
        const head = m.slice(0, end)
        if (d.accept(head)) return this.replacement(d.label, head) + m.slice(end)
      }
    }
    return m
  }

  /**
   * `string`, remembering its answers for up to `max` distinct strings of up to 256 characters.
   * Telemetry repeats the same principal ids, tool names and span names on every call; without
   * the memo each of them runs the detectors again.
   */
  memoized(max = 4096): (s: string) => string {
    const memo = new LRUCache<string, string>({ max })
    return (s) => {
      if (s.length > 256) return this.string(s)
      let out = memo.get(s)
      if (out === undefined) memo.set(s, (out = this.string(s)))
      return out
    }
  }

  /** The labels of what `s` holds (for tests and reports). */
  detect(s: string): string[] {
    const found: string[] = []
    for (const d of this.detectors) {
      d.re.lastIndex = 0
      for (const m of s.matchAll(d.re)) if (this.replaceMatch(d, m[0]) !== m[0]) found.push(d.label)
    }
    return found
  }

  /** A copy of a JSON value with every string (keys excepted) redacted; unchanged values keep their identity. */
  value<T>(v: T, depth = 0): T {
    if (typeof v === 'string') return this.string(v) as T
    if (v === null || typeof v !== 'object' || depth > 64) return v
    if (Array.isArray(v)) {
      let changed = false
      const out = v.map((x) => {
        const r = this.value(x, depth + 1)
        if (r !== x) changed = true
        return r
      })
      return (changed ? out : v) as T
    }
    let out: Record<string, unknown> | undefined
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const r = this.value(x, depth + 1)
      if (r !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = r
    }
    return (out ?? v) as T
  }
}
