import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { MasterKey } from './master-key.js'

/**
 * Sealed values: `gh1.<keyId>.<base64url(iv ‖ ciphertext ‖ tag)>`, AES-256-GCM under the master key.
 * The associated data binds a value to its purpose, so a value sealed for one use cannot be
 * replayed into another field.
 */
const PREFIX = 'gh1'
export const MANIFEST_SECRET_AAD = 'gatehouse/manifest-secret'

export function seal(master: MasterKey, plaintext: string, aad = MANIFEST_SECRET_AAD): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', master.key, iv)
  cipher.setAAD(Buffer.from(aad))
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return `${PREFIX}.${master.id}.${Buffer.concat([iv, ct, cipher.getAuthTag()]).toString('base64url')}`
}

export function unseal(
  keys: MasterKey | readonly MasterKey[],
  sealed: string,
  aad = MANIFEST_SECRET_AAD,
): string {
  const parts = sealed.split('.')
  const [prefix, keyId, body] = parts
  if (parts.length !== 3 || prefix !== PREFIX || !keyId || !body || !/^[A-Za-z0-9_-]+$/.test(body))
    throw new GatewayError('bad_request', 'not a sealed value (expected gh1.…)')
  const master = (Array.isArray(keys) ? keys : [keys]).find((k: MasterKey) => k.id === keyId)
  if (!master)
    throw new GatewayError('bad_request', `sealed with master key ${keyId}, which this gateway does not have`)
  const raw = Buffer.from(body, 'base64url')
  if (raw.length < 12 + 16) throw new GatewayError('bad_request', 'sealed value is truncated')
  try {
    const decipher = createDecipheriv('aes-256-gcm', master.key, raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(aad))
    decipher.setAuthTag(raw.subarray(raw.length - 16))
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString(
      'utf8',
    )
  } catch {
    throw new GatewayError(
      'bad_request',
      'sealed value failed authentication (tampered, or sealed for another use)',
    )
  }
}
