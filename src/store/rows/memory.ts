import { GatewayError } from '../../errors.js'

/**
 * Memory items as both stores keep them: limits, the namespace encoding, and input validation
 * (every problem a `bad_request` naming it).
 */

export const MAX_LABELS = 10
export const MAX_LABEL_CHARS = 128
export const MAX_KEY_CHARS = 512
export const MAX_VALUE_BYTES = 1024 * 1024
export const MAX_TTL_SECONDS = 10 * 365 * 86400
export const MAX_LIMIT = 1000
export const MAX_FILTER_FIELDS = 32
export const MAX_IN_VALUES = 100

/*
 * Namespace encoding. The label array is stored in one TEXT column as each label followed by a
 * terminator, U+0001. Labels may hold any character: U+0000, U+0001 and U+0002 are escaped as
 * U+0002 followed by '0', '1' or '2'. The terminator is thus the smallest code unit of the
 * encoding and never occurs inside an encoded label, which gives three properties:
 *  - a prefix of labels is a prefix of the string ending at a terminator, so ["a"] never
 *    matches ["ab"] and ["a","bc"] never matches ["ab","c"];
 *  - that prefix is the half-open range [P, P with its last U+0001 replaced by U+0002), which
 *    the primary key (tenant, namespace, key) serves as an index range scan;
 *  - binary string order is label-by-label order, so namespaces sort naturally.
 */
export const TERM = '\u0001'
export const ESC = '\u0002'

export function encodeLabel(label: string): string {
  let out = ''
  for (const c of label) {
    const code = c.charCodeAt(0)
    out += code <= 2 ? ESC + String.fromCharCode(0x30 + code) : c
  }
  return out
}

export function decodeLabel(label: string): string {
  let out = ''
  for (let i = 0; i < label.length; i++) {
    if (label[i] === ESC) out += String.fromCharCode(label.charCodeAt(++i) - 0x30)
    else out += label[i]
  }
  return out
}

export function encodeNamespace(labels: readonly string[]): string {
  return labels.map((l) => encodeLabel(l) + TERM).join('')
}

export function decodeNamespace(encoded: string): string[] {
  return encoded.split(TERM).slice(0, -1).map(decodeLabel)
}

/** The first `depth` labels of an encoded namespace, still encoded. */
export function truncateEncoded(encoded: string, depth: number): string {
  let at = -1
  for (let i = 0; i < depth; i++) {
    at = encoded.indexOf(TERM, at + 1)
    if (at === -1) return encoded
  }
  return encoded.slice(0, at + 1)
}

export const bad = (message: string) => new GatewayError('bad_request', message)

export const LONE_SURROGATE = /[\uD800-\uDFFF]/u

export function checkText(what: string, s: unknown, max: number): string {
  if (typeof s !== 'string') throw bad(`${what} must be a string`)
  if (s.length === 0) throw bad(`${what} is empty; it must be 1–${max} characters`)
  if (s.length > max && [...s].length > max) throw bad(`${what} is longer than ${max} characters`)
  if (LONE_SURROGATE.test(s)) throw bad(`${what} is not well-formed Unicode (lone surrogate)`)
  return s
}

/** Validates a namespace (or, with `minLabels` 0, a prefix) and returns it encoded. */
export function checkNamespace(what: string, ns: unknown, minLabels: number): string {
  if (!Array.isArray(ns)) throw bad(`${what} must be an array of labels, e.g. ["users", "u-1"]`)
  if (ns.length < minLabels) throw bad(`${what} needs at least ${minLabels} label`)
  if (ns.length > MAX_LABELS) throw bad(`${what} has ${ns.length} labels; at most ${MAX_LABELS} are allowed`)
  ns.forEach((l, i) => checkText(`${what} label ${i + 1}`, l, MAX_LABEL_CHARS))
  return encodeNamespace(ns as string[])
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function checkValue(value: unknown): string {
  if (!isPlainObject(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
    throw bad(`value must be a JSON object, got ${got}`)
  }
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (err) {
    throw bad(`value is not serialisable as JSON: ${(err as Error).message}`)
  }
  if (text === undefined || !text.startsWith('{')) throw bad('value must serialise to a JSON object')
  const bytes = Buffer.byteLength(text)
  if (bytes > MAX_VALUE_BYTES)
    throw bad(`value is ${bytes} bytes as JSON; the limit is ${MAX_VALUE_BYTES} bytes (1 MiB)`)
  return text
}

export function checkInt(what: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`${what} must be an integer from ${min} to ${max}`)
  return v
}

export function checkTtl(ttl: unknown): number | undefined {
  if (ttl === undefined) return undefined
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0 || ttl > MAX_TTL_SECONDS)
    throw bad(`ttl must be a number of seconds above 0 and at most ${MAX_TTL_SECONDS}`)
  return ttl
}

/* Filters, compiled to SQL over json_each(value): field names are bound, never spliced in. */
