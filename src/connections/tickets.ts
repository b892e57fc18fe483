import type { CallContext, Principal } from '../context.js'
import { GatewayError } from '../errors.js'
import type { MasterKey } from '../vault/master-key.js'
import { seal, unseal } from '../vault/seal.js'

/** Connect links are good for this long: the same as the OAuth state they lead to. */
export const CONNECT_TTL_MS = 10 * 60_000

const TICKET_AAD = 'gatehouse/connect-ticket'

/** Who a connection belongs to: the human (or key) an agent acts for, never the agent itself. */
export function ownerPrincipal(p: Principal): Principal {
  let cur = p
  while (cur.kind === 'agent' && cur.onBehalfOf) cur = cur.onBehalfOf
  return cur
}

/** The stored user id of a caller's connections: `{kind}:{id}` of the owning principal. */
export function connectionUser(ctx: CallContext): string {
  const p = ownerPrincipal(ctx.principal)
  return `${p.kind}:${p.id}`
}

/** A personal connect link's payload: whose connection it starts, for which connector, until when. */
export interface ConnectTicket {
  tenant: string
  userId: string
  connector: string
  scopes?: string[]
  /** Expiry, epoch ms. */
  exp: number
}

/**
 * A connect link carries a sealed ticket, so the browser that opens it needs no gateway
 * credentials of its own: the ticket names the user whose call asked for the connection.
 * The callback is then bound to that browser by a cookie (see the routes).
 */
export function issueTicket(master: MasterKey, t: Omit<ConnectTicket, 'exp'>, now = Date.now()): string {
  return seal(master, JSON.stringify({ ...t, exp: now + CONNECT_TTL_MS }), TICKET_AAD)
}

export function readTicket(keys: readonly MasterKey[], ticket: string, now = Date.now()): ConnectTicket {
  let t: ConnectTicket
  try {
    t = JSON.parse(unseal(keys, ticket, TICKET_AAD)) as ConnectTicket
  } catch {
    throw new GatewayError(
      'unauthenticated',
      'this connect link is not valid (altered, or from another gateway)',
    )
  }
  if (typeof t.exp !== 'number' || t.exp < now)
    throw new GatewayError(
      'unauthenticated',
      'this connect link has expired: call the tool again for a fresh one',
    )
  return t
}
