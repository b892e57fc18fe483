import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { MasterKey } from './master-key.js'

/**
 * Envelope encryption: every value gets its own random 32-byte data key (AES-256-GCM); the data
 * key is wrapped by a master key that a `KeyProvider` holds (the local master keys, or a KMS).
 * Rotating the master key re-wraps the small data key and leaves the ciphertext alone. The caller's
 * AAD (e.g. `connectionAad`) is bound to both the wrapped key and the payload, so a value copied
 * into another row fails to open.
 */

/** KMS-shaped: wraps/unwraps data keys under master keys identified by id. */
export interface KeyProvider {
  /** The key new data keys are wrapped under. */
  readonly primaryId: string
  /** Whether this provider can unwrap data keys wrapped under `keyId`. */
  has(keyId: string): boolean
  /** Wraps under `primaryId`, bound to `aad`. */
  wrap(dataKey: Buffer, aad: string): Promise<{ keyId: string; wrapped: string }>
  /** Throws a GatewayError when the key is unknown or the wrap fails authentication. */
  unwrap(keyId: string, wrapped: string, aad: string): Promise<Buffer>
}

export interface Envelope {
  /** The master key the data key is wrapped under. */
  keyId: string
  /** The data key, wrapped by the provider (opaque to everything else). */
  wrappedKey: string
  /** base64url(iv ‖ ciphertext ‖ tag) of the payload under the data key. */
  ciphertext: string
}

const IV = 12
const TAG = 16
const DATA_KEY = 32
const B64URL = /^[A-Za-z0-9_-]+$/
/** Domain separation: a wrapped data key can never be mistaken for a payload, nor the reverse. */
const WRAP_DOMAIN = 'gatehouse/envelope-key/v1\n'
const PAYLOAD_DOMAIN = 'gatehouse/envelope/v1\n'

function gcmSeal(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url')
}

/** Undefined when the text is malformed or fails authentication (the caller names which part). */
function gcmOpen(key: Buffer, text: string, aad: string): Buffer | undefined {
  if (!B64URL.test(text)) return undefined
  const raw = Buffer.from(text, 'base64url')
  if (raw.length < IV + TAG) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV))
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(raw.subarray(raw.length - TAG))
    return Buffer.concat([decipher.update(raw.subarray(IV, raw.length - TAG)), decipher.final()])
  } catch {
    return undefined
  }
}

function unknownKey(keyId: string): GatewayError {
  return new GatewayError(
    'unavailable',
    `envelope is wrapped under master key ${keyId}, which this gateway does not have; ` +
      'add that key to GATEHOUSE_MASTER_KEYS_PREVIOUS or DATA/master.keys.previous',
    { retryable: false },
  )
}

function failedAuth(part: string): GatewayError {
  return new GatewayError(
    'internal',
    `envelope ${part} failed authentication: tampered, or opened with the wrong AAD (sealed for another record)`,
  )
}

/**
 * A provider's own failure (a KMS outage, a network error) as a GatewayError that names the key,
 * never the provider's message (which we cannot vouch for); the original stays as `cause`.
 */
async function viaProvider<T>(what: string, keyId: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof GatewayError) throw err
    throw new GatewayError(
      'unavailable',
      `the key provider could not ${what} a data key (master key ${keyId})`,
      {
        cause: err,
      },
    )
  }
}

/** The gateway's own master keys as a KeyProvider; `keys[0]` is the primary. */
export function localKeyProvider(keys: readonly MasterKey[]): KeyProvider {
  const primary = keys[0]
  if (!primary) throw new GatewayError('internal', 'localKeyProvider needs at least one master key')
  const byId = new Map(keys.map((k) => [k.id, k]))
  return {
    primaryId: primary.id,
    has: (keyId) => byId.has(keyId),
    async wrap(dataKey, aad) {
      return { keyId: primary.id, wrapped: gcmSeal(primary.key, dataKey, WRAP_DOMAIN + aad) }
    },
    async unwrap(keyId, wrapped, aad) {
      const master = byId.get(keyId)
      if (!master) throw unknownKey(keyId)
      const dataKey = gcmOpen(master.key, wrapped, WRAP_DOMAIN + aad)
      if (!dataKey) throw failedAuth('data key')
      return dataKey
    },
  }
}

/** Encrypts `plaintext` under a fresh data key, wrapped by the provider's primary key. */
export async function sealEnvelope(p: KeyProvider, plaintext: string, aad: string): Promise<Envelope> {
  const dataKey = randomBytes(DATA_KEY)
  try {
    const ciphertext = gcmSeal(dataKey, Buffer.from(plaintext, 'utf8'), PAYLOAD_DOMAIN + aad)
    const { keyId, wrapped } = await viaProvider('wrap', p.primaryId, () => p.wrap(dataKey, aad))
    return { keyId, wrappedKey: wrapped, ciphertext }
  } finally {
    dataKey.fill(0)
  }
}

export async function openEnvelope(p: KeyProvider, e: Envelope, aad: string): Promise<string> {
  assertEnvelope(e)
  if (!p.has(e.keyId)) throw unknownKey(e.keyId)
  const dataKey = await viaProvider('unwrap', e.keyId, () => p.unwrap(e.keyId, e.wrappedKey, aad))
  try {
    if (dataKey.length !== DATA_KEY) throw failedAuth('data key')
    const plain = gcmOpen(dataKey, e.ciphertext, PAYLOAD_DOMAIN + aad)
    if (!plain) throw failedAuth('payload')
    return plain.toString('utf8')
  } finally {
    dataKey.fill(0)
  }
}

/** Re-wraps the data key under the primary key; ciphertext unchanged. undefined when already under primary. */
export async function rewrapEnvelope(
  p: KeyProvider,
  e: Envelope,
  aad: string,
): Promise<Envelope | undefined> {
  assertEnvelope(e)
  if (e.keyId === p.primaryId) return undefined
  if (!p.has(e.keyId)) throw unknownKey(e.keyId)
  const dataKey = await viaProvider('unwrap', e.keyId, () => p.unwrap(e.keyId, e.wrappedKey, aad))
  try {
    if (dataKey.length !== DATA_KEY) throw failedAuth('data key')
    const { keyId, wrapped } = await viaProvider('wrap', p.primaryId, () => p.wrap(dataKey, aad))
    return { keyId, wrappedKey: wrapped, ciphertext: e.ciphertext }
  } finally {
    dataKey.fill(0)
  }
}

/** AAD binding a connection's tokens to tenant, user, connector and connection id. */
export function connectionAad(c: { tenant: string; userId: string; connector: string; id: string }): string {
  return aadOf('connection', [c.tenant, c.userId, c.connector, c.id])
}

/** AAD of an OAuth client's secret (`OAuthClientRecord.sealedSecret`, as `sealString`). */
export function oauthClientAad(c: { tenant: string; connector: string; issuer: string }): string {
  return aadOf('oauth-client', [c.tenant, c.connector, c.issuer])
}

/** AAD of a PKCE verifier (`OAuthStateRecord.sealedVerifier`, as `sealString`); `id` is the state's hash. */
export function oauthStateAad(s: { tenant: string; userId: string; connector: string; id: string }): string {
  return aadOf('oauth-state', [s.tenant, s.userId, s.connector, s.id])
}

/** JSON of the parts: unambiguous whatever characters the parts hold. */
function aadOf(kind: string, parts: readonly string[]): string {
  return `gatehouse/${kind}:${JSON.stringify(parts)}`
}

/** Whether a value has the shape of an envelope (strings of the right alphabet); says nothing about keys. */
export function isEnvelope(e: unknown): e is Envelope {
  if (typeof e !== 'object' || e === null) return false
  const { keyId, wrappedKey, ciphertext } = e as Record<string, unknown>
  return (
    typeof keyId === 'string' &&
    keyId.length > 0 &&
    typeof wrappedKey === 'string' &&
    wrappedKey.length > 0 &&
    typeof ciphertext === 'string' &&
    B64URL.test(ciphertext) &&
    Buffer.from(ciphertext, 'base64url').length >= IV + TAG
  )
}

function assertEnvelope(e: Envelope): void {
  if (!isEnvelope(e))
    throw new GatewayError('internal', 'envelope is malformed (keyId, wrappedKey, ciphertext)')
}

/*
 * One envelope as one string, for single columns (OAuth client secrets, PKCE verifiers):
 * `ev1.<base64url keyId>.<base64url wrappedKey>.<ciphertext>`. base64url has no dots, so the
 * parts split unambiguously whatever a provider's key ids and wrapped keys look like.
 */
const STRING_PREFIX = 'ev1'

export function encodeEnvelope(e: Envelope): string {
  const b = (s: string) => Buffer.from(s, 'utf8').toString('base64url')
  return `${STRING_PREFIX}.${b(e.keyId)}.${b(e.wrappedKey)}.${e.ciphertext}`
}

export function decodeEnvelope(s: string): Envelope {
  const parts = s.split('.')
  const [prefix, keyId, wrapped, ciphertext] = parts
  const e =
    parts.length === 4 && prefix === STRING_PREFIX && keyId && wrapped && B64URL.test(keyId + wrapped)
      ? {
          keyId: Buffer.from(keyId, 'base64url').toString('utf8'),
          wrappedKey: Buffer.from(wrapped, 'base64url').toString('utf8'),
          ciphertext: ciphertext ?? '',
        }
      : undefined
  if (!e || !isEnvelope(e))
    throw new GatewayError('internal', 'not a sealed envelope string (expected ev1.…)')
  return e
}

/** Whether a string looks like `encodeEnvelope` output (shape only). */
export function isEnvelopeString(s: string): boolean {
  try {
    decodeEnvelope(s)
    return true
  } catch {
    return false
  }
}

/** `sealEnvelope`, as one string. */
export async function sealString(p: KeyProvider, plaintext: string, aad: string): Promise<string> {
  return encodeEnvelope(await sealEnvelope(p, plaintext, aad))
}

/** `openEnvelope` of a `sealString` value. */
export async function openString(p: KeyProvider, sealed: string, aad: string): Promise<string> {
  return openEnvelope(p, decodeEnvelope(sealed), aad)
}

/** `rewrapEnvelope` of a `sealString` value; undefined when already under the primary key. */
export async function rewrapString(p: KeyProvider, sealed: string, aad: string): Promise<string | undefined> {
  const next = await rewrapEnvelope(p, decodeEnvelope(sealed), aad)
  return next && encodeEnvelope(next)
}
