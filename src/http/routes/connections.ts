import type { IncomingMessage } from 'node:http'
import type { TokenBroker } from '../../connections/broker.js'
import { connectionUser, readTicket } from '../../connections/tickets.js'
import { hasRole, type CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { clientMetadataDocument } from '../../oauth/index.js'
import type { ConnectionRecord } from '../../store/connections.js'
import type { Store } from '../../store/types.js'
import type { MasterKey } from '../../vault/master-key.js'
import type { RouteRequest, Route } from '../router.js'

export interface ConnectionRouteDeps {
  store: Store
  broker: TokenBroker
  masterKeys: readonly MasterKey[]
}

/** The cookie binding a connect flow to the browser that started it (named by the state's hash). */
const cookieName = (stateId: string) => `gatehouse_connect_${stateId.slice(0, 16)}`

/** Metadata only: never a token. */
export function connectionView(c: ConnectionRecord): Record<string, unknown> {
  return {
    id: c.id,
    connector: c.connector,
    user: c.userId,
    provider: c.provider,
    ...(c.account ? { account: c.account } : {}),
    scopes: c.scopes,
    expires_at: c.expiresAt ?? null,
    refreshable: c.hasRefreshToken,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  }
}

/**
 * Outbound account connections (docs/connections.md): the connect flow under /oauth and the
 * connections API under /v1/connections. Members see and delete their own connections; admins
 * see and delete their tenant's.
 */
export function connectionRoutes(deps: ConnectionRouteDeps): Route[] {
  const { store, broker } = deps
  /** The caller's own connection; admins reach any in their tenant, auditors read any. */
  const own = async (ctx: CallContext, id: string, write = false): Promise<ConnectionRecord> => {
    const c = await store.connections.get(ctx, id)
    const oversee = hasRole(ctx, 'admin') || (!write && hasRole(ctx, 'auditor'))
    if (!c || (c.userId !== connectionUser(ctx) && !oversee))
      throw new GatewayError('not_found', `connection ${id} not found`)
    return c
  }
  return [
    {
      method: 'GET',
      path: '/oauth/connect/{connector}',
      auth: 'optional',
      summary: 'start connecting the caller’s account to an oauth2 connector (redirects to the provider)',
      handler: async (r) => {
        const who = connectIdentity(r, deps.masterKeys)
        const scopes = r.url.searchParams.get('scope')?.split(' ').filter(Boolean) ?? who.scopes
        const returnTo = safeReturnTo(r.url.searchParams.get('return_to'))
        const started = await broker.begin(who, r.params.connector!, {
          ...(scopes?.length ? { scopes } : {}),
          ...(returnTo ? { returnTo } : {}),
        })
        const secure = broker.redirectUri().startsWith('https://') ? '; Secure' : ''
        return {
          status: 302,
          headers: {
            location: started.url,
            'cache-control': 'no-store',
            'set-cookie': `${cookieName(started.stateId)}=${started.binding}; Path=/oauth/callback; HttpOnly; SameSite=Lax; Max-Age=600${secure}`,
          },
        }
      },
    },
    {
      method: 'GET',
      path: '/oauth/callback',
      auth: 'optional',
      summary: 'the provider’s redirect back: finishes a connect flow (same user, same browser)',
      handler: async (r) => {
        const cookies = parseCookies(r.req)
        const ctx = r.req.headers.authorization !== undefined ? r.ctx : undefined
        const { record, stateId, returnTo } = await broker.finish(r.url, {
          ...(ctx ? { ctx } : {}),
          binding: (stateId) => cookies.get(cookieName(stateId)),
        })
        const clear = `${cookieName(stateId)}=; Path=/oauth/callback; HttpOnly; SameSite=Lax; Max-Age=0`
        if (returnTo) {
          const headers: Record<string, string> = { location: returnTo, 'set-cookie': clear }
          return { status: 303, headers }
        }
        if (wantsJson(r.req)) {
          const headers: Record<string, string> = { 'set-cookie': clear }
          return { body: { connected: connectionView(record) }, headers }
        }
        r.res
          .writeHead(200, {
            'content-type': 'text/html; charset=utf-8',
            'cache-control': 'no-store',
            'set-cookie': clear,
            'content-security-policy': "default-src 'none'",
          })
          .end(
            `<!doctype html><meta charset="utf-8"><title>Connected</title>` +
              `<p>Your <strong>${escapeHtml(record.connector)}</strong> account is connected. ` +
              `You can close this window and retry what you were doing.</p>`,
          )
        return undefined
      },
    },
    {
      method: 'GET',
      path: '/oauth/client-metadata.json',
      auth: 'none',
      summary: 'the gateway’s OAuth Client ID Metadata Document (https deployments)',
      handler: async () => {
        const id = broker.clientMetadataUrl()
        if (!id)
          throw new GatewayError(
            'not_found',
            'no client metadata document: the gateway’s public URL is not https (set publicUrl)',
          )
        return {
          body: clientMetadataDocument({
            clientId: id,
            clientName: 'Gatehouse',
            redirectUris: [broker.redirectUri()],
          }),
          headers: { 'cache-control': 'public, max-age=300' },
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/connections',
      auth: 'required',
      summary: 'the caller’s account connections (admins: the tenant’s; ?user= filters); metadata only',
      handler: async (r) => {
        const admin = hasRole(r.ctx, 'admin') || hasRole(r.ctx, 'auditor')
        const user = r.url.searchParams.get('user')
        if (user && !admin) throw new GatewayError('forbidden', 'only admins list other users’ connections')
        const connector = r.url.searchParams.get('connector')
        const items = await store.connections.list(r.ctx, {
          ...(admin ? (user ? { userId: user } : {}) : { userId: connectionUser(r.ctx) }),
          ...(connector ? { connector } : {}),
        })
        return { body: { items: items.map(connectionView) } }
      },
    },
    {
      method: 'GET',
      path: '/v1/connections/{id}',
      auth: 'required',
      summary: 'one account connection (own, or any in the tenant for admins); metadata only',
      handler: async (r) => ({ body: connectionView(await own(r.ctx, r.params.id!)) }),
    },
    {
      method: 'DELETE',
      path: '/v1/connections/{id}',
      auth: 'required',
      summary: 'disconnect: revoke at the provider (when it can) and delete',
      handler: async (r) => {
        const c = await own(r.ctx, r.params.id!, true)
        const { revoked } = await broker.disconnect(r.ctx, c)
        return { body: { deleted: c.id, revoked } }
      },
    },
  ]
}

/** Who starts a connect flow: a personal connect link's ticket, or the caller's own credentials. */
function connectIdentity(
  r: RouteRequest,
  keys: readonly MasterKey[],
): { tenant: string; userId: string; scopes?: string[] } {
  const ticket = r.url.searchParams.get('ticket')
  const authed = r.req.headers.authorization !== undefined
  if (ticket) {
    const t = readTicket(keys, ticket)
    if (t.connector !== r.params.connector)
      throw new GatewayError('bad_request', `this connect link is for connector ${t.connector}`)
    if (authed && (r.ctx.tenant !== t.tenant || connectionUser(r.ctx) !== t.userId))
      throw new GatewayError('forbidden', 'this connect link belongs to another user')
    return { tenant: t.tenant, userId: t.userId, ...(t.scopes ? { scopes: t.scopes } : {}) }
  }
  if (!authed)
    throw new GatewayError(
      'unauthenticated',
      'open the connect link a tool call gave you (it carries a ticket), or send your gateway credentials',
    )
  return { tenant: r.ctx.tenant, userId: connectionUser(r.ctx) }
}

const HERE = 'http://gateway.invalid'

/**
 * Only a path on this gateway: never another origin (no open redirect). Browsers drop tabs and
 * newlines from a URL (`/\t/evil.example` becomes `//evil.example`) and read `\` as `/`, so a
 * path with either, with a space or control character, or that resolves elsewhere is refused.
 */
export function safeReturnTo(v: string | null): string | undefined {
  if (!v) return undefined
  // eslint-disable-next-line no-control-regex
  const plain = v.startsWith('/') && !v.startsWith('//') && !/[\u0000-\u0020\u007f\\]/.test(v)
  if (!plain || new URL(v, HERE).origin !== HERE)
    throw new GatewayError('bad_request', 'return_to must be a path on this gateway (starting with one /)')
  return v
}

function parseCookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim())
  }
  return out
}

function wantsJson(req: IncomingMessage): boolean {
  const a = req.headers.accept ?? ''
  return a.includes('application/json') && !a.includes('text/html')
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
