import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'

/** The tenant a store call may touch: the caller's own, or any for an operator. */
export function scopedTenant(ctx: CallContext, requested?: string): string {
  if (requested === undefined || requested === ctx.tenant) return ctx.tenant
  if (ctx.operator) return requested
  // Same answer as a missing row: no probing of other tenants.
  throw new GatewayError('not_found', 'not found')
}

export function requireOperator(ctx: CallContext, what: string): void {
  if (!ctx.operator) throw new GatewayError('forbidden', `${what} needs an operator key`)
}

export function nowIso(): string {
  return new Date().toISOString()
}

/** Opaque page cursors: base64url of the last row's sort key. */
export function encodeCursor(parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url')
}

export function decodeCursor(cursor: string): (string | number)[] {
  try {
    const parts: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(parts)) return parts as (string | number)[]
  } catch {
    // fall through
  }
  throw new GatewayError('bad_request', 'invalid cursor')
}
