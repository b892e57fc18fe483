import { hasRole, type CallContext } from '../context.js'

/**
 * Ownership of threads, runs and other per-principal records. A run started by an agent acting for
 * a user belongs to that user, so the user sees it.
 */
export function ownerOf(ctx: CallContext): string {
  let p = ctx.principal
  while (p.kind === 'agent' && p.onBehalfOf) p = p.onBehalfOf
  return `${p.kind}:${p.id}`
}

/** Admins, auditors and operators see every owner's records in their tenant; others only their own. */
export function seesTenant(ctx: CallContext): boolean {
  return ctx.operator || hasRole(ctx, 'admin', 'auditor')
}
