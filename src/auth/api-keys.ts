import { randomBytes } from 'node:crypto'
import { sha256Hex } from '../hash.js'

/** API keys are `gk_` + 32 random bytes; only their sha256 is stored. */
export const API_KEY_PREFIX = 'gk_'

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url')
}

export function generateKeyId(): string {
  return 'key_' + randomBytes(9).toString('base64url')
}

/** High-entropy keys need no slow hash: sha256 is preimage-resistant and cheap on the hot path. */
export function hashApiKey(key: string): string {
  return sha256Hex(key)
}
