import { hash } from 'node:crypto'

/** SHA-256 of a UTF-8 string, as hex: Node's one-shot hash, cheaper per call than a Hash object. */
export function sha256Hex(s: string): string {
  return hash('sha256', s, 'hex')
}
