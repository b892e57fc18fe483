import { randomBytes, randomUUID } from 'node:crypto'
import { fetch as undiciFetch, type Dispatcher } from 'undici'
import { BUILTIN_CONNECTORS } from '../../connectors/index.js'
import { createContext, systemContext, type CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import { sha256Hex } from '../hash.js'
import type { Logger } from '../log.js'
import { isBrokered, type ConnectorSpec, type OAuth2Auth } from '../manifests/schema.js'
import { createGuardedAgent } from '../net/ssrf.js'
import { canonicalResource } from '../oauth/discovery.js'
import {
  OAuthClient,
  OAuthError,
  parseBearerChallenge,
  PROVIDER_PRESETS,
  type RegisteredClient,
  type TokenSet,
} from '../oauth/index.js'
import type { CredentialBroker } from '../pipeline/stages.js'
import type { ToolCall } from '../pipeline/types.js'
import type { ConnectionRecord, OAuthClientRecord, OAuthStateRecord } from '../store/connections.js'
import type { Store } from '../store/types.js'
import type { AuditWriter } from '../telemetry/audit.js'
import { UpstreamAuthRejected, type CallerCredential } from '../upstream/rpc.js'
import {
  connectionAad,
  oauthClientAad,
  openEnvelope,
  openString,
  sealEnvelope,
  sealString,
  type KeyProvider,
} from '../vault/envelope.js'
import type { MasterKey } from '../vault/master-key.js'
import { seal, unseal } from '../vault/seal.js'
import type { SecretResolver } from '../vault/secrets.js'
import { CONNECT_TTL_MS, connectionUser, issueTicket } from './tickets.js'

/** How long one process may hold a connection's refresh before another may take it over. */
const REFRESH_LOCK_MS = 30_000
/** How long a call waits for another process's refresh of the same connection. */
const REFRESH_WAIT_MS = 20_000

const stateAad = (id: string) => `gatehouse/oauth-state:${id}`

/** The decrypted token set of a connection, as sealed in its envelope. */
interface Sealed {
  a: string
  t: string
  r?: string
  i?: string
  /**
   * The upstream the tokens were obtained for (`upstreamOf` the connector when the user
   * connected); absent on connections made before it was recorded.
   */
  u?: string
}

/** What the credential stage attaches to a call: the CallerCredential plus which row it came from. */
interface AttachedCredential extends CallerCredential {
  connectionId: string
  version: number
}

export interface BrokerOptions {
  store: Store
  keys: KeyProvider
  /** Master keys for small sealed values (PKCE verifiers, client secrets, connect links); first is current. */
  masterKeys: readonly MasterKey[]
  secrets: SecretResolver
  audit: AuditWriter
  logger: Logger
  /** The gateway's public base URL (connect links, the callback, the client metadata document). */
  publicUrl(): string
  /** Connector specs by tenant and name (the registry's current view). */
  connector(tenant: string, name: string): ConnectorSpec | undefined
  /** A user connected or disconnected: the connector's tool list may change. */
  onConnectionsChanged(tenant: string, connector: string): void
  allowPrivateNetwork: boolean
  /** Refresh a token expiring within this margin (config tokenRefreshSkewMs). */
  refreshSkewMs: number
}

export interface BeginResult {
  /** Where to send the browser (the provider's authorization endpoint). */
  url: string
  /** The browser binding: set as a cookie, required back on the callback. */
  binding: string
  /** sha256 of the state: names the binding cookie. */
  stateId: string
}

/**
 * The token broker (docs/connections.md): per-user OAuth connections to upstream services. It
 * starts and finishes connect flows, keeps tokens envelope-encrypted in the store, refreshes them
 * single-flight (in one process through a shared promise, across processes through a lock taken
 * by compare-and-swap on the row's version), revokes them, and gives each call its caller's own
 * token — or a `connection_required` error carrying a personal connect link.
 */
export class TokenBroker implements CredentialBroker {
  private readonly clients = new Map<string, { spec: ConnectorSpec; client: OAuthClient }>()
  private readonly refreshing = new Map<string, Promise<{ rec: ConnectionRecord; tokens: Sealed }>>()
  private readonly guarded: Dispatcher

  constructor(private readonly o: BrokerOptions) {
    this.guarded = createGuardedAgent({ allowPrivate: o.allowPrivateNetwork })
  }

  // ---- the credential stage -------------------------------------------------------------------

  handles(call: ToolCall): boolean {
    const spec = call.tool.connection.spec
    return spec !== undefined && isBrokered(spec)
  }

  async attach(call: ToolCall): Promise<void> {
    const { ctx, tool } = call
    const spec = tool.connection.spec!
    call.credential = await this.credential(ctx, tool.connection.name, spec, toolScopes(spec, tool.name))
    if (spec.auth?.type === 'static') return
    call.headers.authorization = `Bearer ${call.credential.accessToken}`
  }

  /**
   * The upstream refused the token. 401: refresh once (if the token was not already refreshed by
   * someone else) and retry; with nothing to refresh, the user must reconnect. 403 with
   * insufficient scope: the user must reconnect granting more.
   */
  async recover(call: ToolCall, e: UpstreamAuthRejected, final: boolean): Promise<void> {
    const cred = call.credential as AttachedCredential | undefined
    const connector = call.tool.connection.name
    const spec = call.tool.connection.spec
    if (!spec || !cred || !cred.connectionId || spec.auth?.type !== 'oauth2') throw e
    if (e.status === 403) {
      const challenge = parseBearerChallenge(e.challenge)
      const wanted = e.scopes ?? challenge?.scopes
      if (challenge?.error === 'insufficient_scope' || wanted?.length) {
        const rec = await this.o.store.connections.find(call.ctx.tenant, connectionUser(call.ctx), connector)
        throw this.required(
          call.ctx,
          connector,
          union(rec?.scopes ?? [], wanted ?? []),
          `${connector} needs more access than your connection grants${wanted?.length ? ` (${wanted.join(' ')})` : ''}: reconnect to grant it`,
        )
      }
      throw e
    }
    if (final) {
      // Refreshed and refused again: this grant is of no use any more.
      await this.forget(cred.connectionId, cred.version)
      throw this.required(
        call.ctx,
        connector,
        undefined,
        `${connector} no longer accepts your connection: reconnect`,
      )
    }
    const rec = await this.o.store.connections.find(call.ctx.tenant, connectionUser(call.ctx), connector)
    if (!rec) throw this.required(call.ctx, connector, undefined, `connect your ${connector} account`)
    const fresh =
      rec.version !== cred.version
        ? { rec, tokens: await this.bound(call.ctx, connector, spec, rec) }
        : await this.refresh(call.ctx, connector, spec, rec, true)
    call.credential = credentialOf(call.ctx, fresh.rec, fresh.tokens)
    call.headers.authorization = `Bearer ${fresh.tokens.a}`
  }

  /** The caller's usable token for a connector: refreshed when about to expire. */
  async credential(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    needed: readonly string[] = [],
  ): Promise<AttachedCredential> {
    if (spec.auth?.type === 'static') {
      const token = this.o.secrets.resolve(spec.auth.token, `connector ${connector} auth.token`)
      return { key: `${ctx.tenant}\u0000static`, accessToken: token, connectionId: '', version: 0 }
    }
    const rec = await this.o.store.connections.find(ctx.tenant, connectionUser(ctx), connector)
    if (!rec)
      throw this.required(ctx, connector, undefined, `connect your ${connector} account to use its tools`)
    // Bound first: a connection made for another server is not described by its scopes.
    const tokens = await this.bound(ctx, connector, spec, rec)
    const missing = needed.filter((s) => !rec.scopes.includes(s))
    if (missing.length)
      throw this.required(
        ctx,
        connector,
        union(rec.scopes, needed),
        `this tool needs ${connector} access your connection does not grant (${missing.join(' ')}): reconnect to grant it`,
      )
    const fresh = await this.usable(ctx, connector, spec, rec, tokens)
    return credentialOf(ctx, fresh.rec, fresh.tokens)
  }

  /**
   * Credentials to list a brokered MCP upstream's tools with: the tenant's most recent
   * connections (at most `limit`), each refreshed if it is about to expire. `renew` gives a
   * force-refreshed credential for one the upstream refused.
   */
  async listingCredentials(
    tenant: string,
    connector: string,
    limit = 3,
  ): Promise<{ credential: CallerCredential; renew(): Promise<CallerCredential | undefined> }[]> {
    const spec = this.o.connector(tenant, connector)
    if (!spec) return []
    const recent = (await this.o.store.connections.list(systemContext(tenant), { connector })).slice(0, limit)
    const out: { credential: CallerCredential; renew(): Promise<CallerCredential | undefined> }[] = []
    for (const rec of recent) {
      const ctx = ownerContext(rec)
      try {
        const fresh = await this.usable(ctx, connector, spec, rec)
        out.push({
          credential: credentialOf(ctx, fresh.rec, fresh.tokens),
          renew: async () => {
            try {
              const r = await this.refresh(ctx, connector, spec, fresh.rec, true)
              return credentialOf(ctx, r.rec, r.tokens)
            } catch {
              return undefined
            }
          },
        })
      } catch (err) {
        this.o.logger.info(
          { tenant, connector, err: (err as Error).message },
          'a connection cannot be used to list tools',
        )
      }
    }
    return out
  }

  /** The error a call gets without a usable connection: it carries the caller's personal connect link. */
  required(ctx: CallContext, connector: string, scopes: string[] | undefined, why: string): GatewayError {
    const url = this.connectUrl(ctx, connector, scopes)
    return new GatewayError('connection_required', `${why}: open ${url}`, {
      details: {
        connector,
        connect_url: url,
        elicitation_id: randomUUID(),
        ...(scopes?.length ? { scopes } : {}),
      },
    })
  }

  connectUrl(ctx: CallContext, connector: string, scopes?: string[]): string {
    const ticket = issueTicket(this.o.masterKeys[0]!, {
      tenant: ctx.tenant,
      userId: connectionUser(ctx),
      connector,
      ...(scopes?.length ? { scopes } : {}),
    })
    return `${this.o.publicUrl()}/oauth/connect/${encodeURIComponent(connector)}?ticket=${encodeURIComponent(ticket)}`
  }

  // ---- the connect flow -----------------------------------------------------------------------

  /** Starts a connect flow for (tenant, user): stores the state, returns the provider URL and the browser binding. */
  async begin(
    who: { tenant: string; userId: string },
    connector: string,
    opts: { scopes?: string[]; returnTo?: string } = {},
  ): Promise<BeginResult> {
    const spec = this.oauthSpec(who.tenant, connector)
    const auth = spec.auth as OAuth2Auth
    const client = this.client(who.tenant, connector, spec)
    const state = randomBytes(32).toString('base64url')
    const binding = randomBytes(32).toString('base64url')
    const stateId = sha256Hex(state)
    const scopes = opts.scopes?.length ? opts.scopes : defaultScopes(spec, auth)
    const started = await client.begin({ state, ...(scopes.length ? { scopes } : {}) })
    const upstream = upstreamOf(spec)
    const now = Date.now()
    await this.o.store.connections.putState({
      id: stateId,
      tenant: who.tenant,
      userId: who.userId,
      connector,
      sealedVerifier: seal(
        this.o.masterKeys[0]!,
        JSON.stringify({
          v: started.codeVerifier,
          b: sha256Hex(binding),
          ...(upstream ? { u: upstream } : {}),
        }),
        stateAad(stateId),
      ),
      redirectUri: this.redirectUri(),
      scopes: started.scopes,
      issuer: started.issuer,
      ...(started.resource ? { resource: started.resource } : {}),
      ...(opts.returnTo ? { returnTo: opts.returnTo } : {}),
      expiresAt: new Date(now + CONNECT_TTL_MS).toISOString(),
      createdAt: new Date(now).toISOString(),
    })
    return { url: started.url, binding, stateId }
  }

  /**
   * Finishes a flow at the callback. The state is consumed first (a replay finds nothing); the
   * caller must be the user who started it (same gateway identity when credentials are sent, and
   * the same browser, by the binding cookie). Nothing is stored unless the provider's answer is good.
   */
  async finish(
    callbackUrl: URL,
    who: { ctx?: CallContext; binding?: (stateId: string) => string | undefined },
  ): Promise<{ record: ConnectionRecord; stateId: string; returnTo?: string }> {
    const state = callbackUrl.searchParams.get('state')
    if (!state)
      throw new GatewayError(
        'bad_request',
        'the callback carries no state: start again from the connect link',
      )
    const stateId = sha256Hex(state)
    const rec = await this.o.store.connections.takeState(stateId, new Date().toISOString())
    if (!rec)
      throw new GatewayError(
        'bad_request',
        'unknown, expired or already used connect state: start again from the connect link',
      )
    /** PKCE verifier, sha256 of the browser binding, the upstream the flow was started for. */
    let inner: { v: string; b: string; u?: string }
    try {
      inner = JSON.parse(unseal(this.o.masterKeys, rec.sealedVerifier, stateAad(stateId))) as {
        v: string
        b: string
        u?: string
      }
    } catch {
      throw new GatewayError('bad_request', 'the stored connect state does not open (altered): start again')
    }
    if (who.ctx && (who.ctx.tenant !== rec.tenant || connectionUser(who.ctx) !== rec.userId))
      throw new GatewayError(
        'forbidden',
        'this connection was started by another user: finish it as the user who started it',
      )
    const binding = who.binding?.(stateId)
    if (binding === undefined || sha256Hex(binding) !== inner.b)
      throw new GatewayError(
        'forbidden',
        'this browser did not start this connection (its connect cookie is missing or different): start again from the connect link in this browser',
      )
    const spec = this.oauthSpec(rec.tenant, rec.connector)
    // As the client's issuer check below: tokens asked for one upstream are not kept for another.
    const upstream = inner.u ?? upstreamOf(spec)
    if (upstream !== upstreamOf(spec))
      throw new GatewayError(
        'bad_request',
        `connector ${rec.connector} was changed to point at another server after this connection was started: start again from a new connect link`,
      )
    const client = this.client(rec.tenant, rec.connector, spec)
    const tokens = await client.finish({
      callbackUrl,
      state,
      codeVerifier: inner.v,
      issuer: rec.issuer,
      ...(rec.resource ? { resource: rec.resource } : {}),
    })
    const record = await this.store(rec, tokens, upstream)
    return { record, stateId, ...(rec.returnTo ? { returnTo: rec.returnTo } : {}) }
  }

  /** Deletes a connection, revoking its tokens at the provider first when the provider can. */
  async disconnect(ctx: CallContext, rec: ConnectionRecord): Promise<{ revoked: boolean }> {
    let revoked = false
    const spec = this.o.connector(rec.tenant, rec.connector)
    if (spec?.auth?.type === 'oauth2') {
      try {
        const t = await this.open(rec)
        const moved = await this.moved(rec.connector, spec, rec, t, true)
        if (moved)
          this.o.logger.info(
            { tenant: rec.tenant, connector: rec.connector, connection: rec.id },
            'the connector now points elsewhere: its tokens are not sent there to be revoked',
          )
        else
          revoked =
            (await this.client(rec.tenant, rec.connector, spec).revoke({
              accessToken: t.a,
              ...(t.r ? { refreshToken: t.r } : {}),
            })) === 'revoked'
      } catch (err) {
        this.o.logger.warn(
          { tenant: rec.tenant, connector: rec.connector, connection: rec.id, err: (err as Error).message },
          'token revocation at the provider failed; deleting the connection anyway',
        )
      }
    }
    await this.o.store.connections.delete(ctx, rec.id)
    void this.o.audit.action(ctx, 'connection.delete', `${rec.connector}/${rec.id}`)
    this.o.onConnectionsChanged(rec.tenant, rec.connector)
    return { revoked }
  }

  /** The Client ID Metadata Document the gateway serves (when its public URL is https). */
  clientMetadataUrl(): string | undefined {
    const base = this.o.publicUrl()
    return base.startsWith('https://') ? `${base}/oauth/client-metadata.json` : undefined
  }

  redirectUri(): string {
    return `${this.o.publicUrl()}/oauth/callback`
  }

  async close(): Promise<void> {
    await (this.guarded as { close?: () => Promise<void> }).close?.()
  }

  // ---- internals ------------------------------------------------------------------------------

  private async store(
    state: OAuthStateRecord,
    tokens: TokenSet,
    upstream: string | undefined,
  ): Promise<ConnectionRecord> {
    const id = randomUUID()
    const sealed = await this.seal(
      { tenant: state.tenant, userId: state.userId, connector: state.connector, id },
      { a: tokens.accessToken, t: tokens.tokenType, r: tokens.refreshToken, i: tokens.idToken, u: upstream },
    )
    const { record, replaced } = await this.o.store.connections.save({
      id,
      tenant: state.tenant,
      userId: state.userId,
      connector: state.connector,
      provider: state.issuer,
      scopes: tokens.scopes ?? state.scopes,
      sealed,
      ...(tokens.expiresAt !== undefined ? { expiresAt: new Date(tokens.expiresAt).toISOString() } : {}),
      hasRefreshToken: Boolean(tokens.refreshToken),
    })
    const ctx = ownerContext(record)
    void this.o.audit.action(
      ctx,
      replaced ? 'connection.replace' : 'connection.create',
      `${record.connector}/${record.id}`,
    )
    if (replaced) void this.revokeQuietly(replaced)
    this.o.onConnectionsChanged(record.tenant, record.connector)
    return record
  }

  private async revokeQuietly(rec: ConnectionRecord): Promise<void> {
    const spec = this.o.connector(rec.tenant, rec.connector)
    if (spec?.auth?.type !== 'oauth2') return
    try {
      const t = await this.open(rec)
      // A grant made with another server than the connector's current one is not sent to it.
      if (await this.moved(rec.connector, spec, rec, t, true)) return
      await this.client(rec.tenant, rec.connector, spec).revoke({
        accessToken: t.a,
        ...(t.r ? { refreshToken: t.r } : {}),
      })
    } catch {
      // The replaced grant is gone from the store either way.
    }
  }

  /**
   * Refresh, single-flight: one promise per connection in this process; across processes, the
   * first to compare-and-swap a refresh lock onto the row refreshes, and the others wait for the
   * row's next version. `invalid_grant` re-reads before giving up (another process may have won).
   */
  private refresh(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    seen: ConnectionRecord,
    force: boolean,
  ): Promise<{ rec: ConnectionRecord; tokens: Sealed }> {
    let p = this.refreshing.get(seen.id)
    if (!p) {
      p = this.refreshNow(ctx, connector, spec, seen, force).finally(() => this.refreshing.delete(seen.id))
      this.refreshing.set(seen.id, p)
    }
    return p
  }

  private async refreshNow(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    seen: ConnectionRecord,
    force: boolean,
  ): Promise<{ rec: ConnectionRecord; tokens: Sealed }> {
    const conns = this.o.store.connections
    const deadline = Date.now() + REFRESH_WAIT_MS
    for (let wait = 25; ; wait = Math.min(wait * 2, 400)) {
      const cur = await conns.find(seen.tenant, seen.userId, connector)
      if (!cur || cur.id !== seen.id)
        throw this.required(ctx, connector, undefined, `your ${connector} connection is gone: connect again`)
      const moved = cur.version !== seen.version
      if (!this.expiring(cur) && (!force || moved)) return { rec: cur, tokens: await this.open(cur) }
      const locked = cur.refreshLockedUntil !== undefined && Date.parse(cur.refreshLockedUntil) > Date.now()
      if (locked) {
        if (Date.now() > deadline)
          throw new GatewayError(
            'upstream_unavailable',
            `refreshing your ${connector} token is taking too long; try again`,
          )
        await sleep(wait)
        continue
      }
      const claimed = await conns.update(cur.id, cur.version, {
        sealed: cur.sealed,
        refreshLockedUntil: new Date(Date.now() + REFRESH_LOCK_MS).toISOString(),
      })
      if (!claimed) continue
      return this.refreshClaimed(ctx, connector, spec, claimed, force && !this.expiring(cur))
    }
  }

  private async refreshClaimed(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    claimed: ConnectionRecord,
    /** The upstream refused a token that had not expired (rather than: it expired). */
    refused: boolean,
  ): Promise<{ rec: ConnectionRecord; tokens: Sealed }> {
    const conns = this.o.store.connections
    const old = await this.open(claimed)
    if (!old.r) {
      await this.forget(claimed.id, claimed.version)
      if (refused)
        throw this.required(
          ctx,
          connector,
          undefined,
          `${connector} no longer accepts your connection: reconnect`,
        )
      throw this.required(
        ctx,
        connector,
        undefined,
        `your ${connector} token expired and cannot be renewed: reconnect`,
      )
    }
    let fresh: TokenSet
    try {
      // The refresh token goes to the connector's authorization server as it resolves now.
      const moved = await this.moved(connector, spec, claimed, old, true)
      if (moved) throw this.required(ctx, connector, undefined, moved)
      fresh = await this.client(claimed.tenant, connector, spec).refresh(old.r, {
        ...(claimed.scopes.length ? { scopes: claimed.scopes } : {}),
      })
    } catch (err) {
      if (err instanceof OAuthError && err.oauthCode === 'invalid_grant') {
        const now = await conns.find(claimed.tenant, claimed.userId, connector)
        if (now && now.version !== claimed.version && !this.expiring(now))
          return { rec: now, tokens: await this.open(now) }
        await this.forget(claimed.id, claimed.version)
        throw this.required(
          ctx,
          connector,
          undefined,
          `your ${connector} connection was revoked or has expired: reconnect`,
        )
      }
      await conns.update(claimed.id, claimed.version, { sealed: claimed.sealed, refreshLockedUntil: null })
      throw err instanceof GatewayError
        ? err
        : new GatewayError(
            'upstream_unavailable',
            `refreshing your ${connector} token failed: ${(err as Error).message}`,
          )
    }
    const tokens: Sealed = {
      a: fresh.accessToken,
      t: fresh.tokenType,
      ...((fresh.refreshToken ?? old.r) ? { r: fresh.refreshToken ?? old.r } : {}),
      ...((fresh.idToken ?? old.i) ? { i: fresh.idToken ?? old.i } : {}),
      ...(old.u ? { u: old.u } : {}),
    }
    const sealed = await this.seal(claimed, tokens)
    const rec = await conns.update(claimed.id, claimed.version, {
      sealed,
      expiresAt: fresh.expiresAt !== undefined ? new Date(fresh.expiresAt).toISOString() : null,
      ...(fresh.scopes ? { scopes: fresh.scopes } : {}),
      hasRefreshToken: Boolean(tokens.r),
      refreshLockedUntil: null,
    })
    if (!rec)
      throw new GatewayError(
        'upstream_unavailable',
        `your ${connector} connection changed during a refresh; try again`,
      )
    this.o.logger.debug({ tenant: rec.tenant, connector, connection: rec.id }, 'token refreshed')
    return { rec, tokens }
  }

  /** A stored client registration as the OAuth client takes it (its secret opened). */
  private async registered(r: OAuthClientRecord, aad: string): Promise<RegisteredClient> {
    return {
      clientId: r.clientId,
      ...(r.sealedSecret ? { clientSecret: await openString(this.o.keys, r.sealedSecret, aad) } : {}),
      ...(r.tokenEndpointAuthMethod ? { tokenEndpointAuthMethod: r.tokenEndpointAuthMethod } : {}),
      registration: r.registration,
    }
  }

  /**
   * The connection's tokens (if it still belongs to the connector), refreshed first when they are
   * about to expire. `tokens`: already opened and checked by `bound`.
   */
  private async usable(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    rec: ConnectionRecord,
    tokens?: Sealed,
  ): Promise<{ rec: ConnectionRecord; tokens: Sealed }> {
    tokens ??= await this.bound(ctx, connector, spec, rec)
    return this.expiring(rec) ? this.refresh(ctx, connector, spec, rec, false) : { rec, tokens }
  }

  /**
   * The connection's tokens, when it still belongs to the connector as it is now; otherwise
   * `connection_required`. A token is for the upstream (RFC 8707 resource) and the authorization
   * server it was obtained from: when an admin re-applies the connector pointing at another
   * `url`, `base_url` or issuer, its users' tokens are not sent there (token passthrough), they
   * connect again. The row is kept: the grant is not known to be dead (a re-apply pointing back
   * makes it usable again), only grants the provider refused are forgotten, and connecting again
   * replaces it.
   */
  private async bound(
    ctx: CallContext,
    connector: string,
    spec: ConnectorSpec,
    rec: ConnectionRecord,
  ): Promise<Sealed> {
    const tokens = await this.open(rec)
    const moved = await this.moved(connector, spec, rec, tokens, false)
    if (moved) throw this.required(ctx, connector, undefined, moved)
    return tokens
  }

  /**
   * Why the connection does not belong to the connector's spec any more, or undefined. The issuer
   * is compared where the manifest settles it; a discovered one (named by the upstream's resource
   * metadata) is resolved when `resolve` (before tokens go to the authorization server), and for a
   * connection that recorded no upstream (where it is the only evidence left).
   */
  private async moved(
    connector: string,
    spec: ConnectorSpec,
    rec: ConnectionRecord,
    tokens: Sealed,
    resolve: boolean,
  ): Promise<string | undefined> {
    const elsewhere = `${connector} was changed to use another server than the one your connection was made for: connect again`
    if (tokens.u !== undefined && tokens.u !== upstreamOf(spec)) return elsewhere
    const issuer = configuredIssuer(spec)
    if (issuer !== undefined) return issuerKey(rec.provider) === issuer ? undefined : elsewhere
    if (!resolve && tokens.u !== undefined) return undefined
    // The client per spec resolves once (a failed discovery is tried again next time).
    const now = await this.client(rec.tenant, connector, spec).issuer()
    return issuerKey(rec.provider) === issuerKey(now) ? undefined : elsewhere
  }

  private expiring(rec: ConnectionRecord): boolean {
    return rec.expiresAt !== undefined && Date.parse(rec.expiresAt) - this.o.refreshSkewMs <= Date.now()
  }

  private async forget(id: string, version: number): Promise<void> {
    await this.o.store.connections.deleteIfVersion(id, version)
  }

  private async open(rec: ConnectionRecord): Promise<Sealed> {
    return JSON.parse(await openEnvelope(this.o.keys, rec.sealed, connectionAad(rec))) as Sealed
  }

  private seal(
    c: { tenant: string; userId: string; connector: string; id: string },
    t: Sealed,
  ): ReturnType<typeof sealEnvelope> {
    return sealEnvelope(this.o.keys, JSON.stringify(t), connectionAad(c))
  }

  private oauthSpec(tenant: string, connector: string): ConnectorSpec {
    const spec = this.o.connector(tenant, connector)
    if (!spec) throw new GatewayError('not_found', `connector ${connector} not found`)
    if (spec.auth?.type !== 'oauth2')
      throw new GatewayError(
        'bad_request',
        `connector ${connector} does not use per-user accounts (auth is not oauth2)`,
      )
    return spec
  }

  /** One OAuth client per connector and spec (a re-applied connector gets a fresh one). */
  private client(tenant: string, connector: string, spec: ConnectorSpec): OAuthClient {
    const k = `${tenant}/${connector}`
    const cached = this.clients.get(k)
    if (cached && cached.spec === spec) return cached.client
    const auth = spec.auth as OAuth2Auth
    const where = `connector ${connector} auth`
    const provider = providerOf(spec, auth)
    const metadataUrl = this.clientMetadataUrl()
    const aad = (issuer: string) => oauthClientAad({ tenant, connector, issuer })
    const client = new OAuthClient({
      settings: {
        ...(provider ? { provider } : {}),
        ...(auth.issuer ? { issuer: auth.issuer } : {}),
        ...(auth.authorization_endpoint ? { authorizationEndpoint: auth.authorization_endpoint } : {}),
        ...(auth.token_endpoint ? { tokenEndpoint: auth.token_endpoint } : {}),
        ...(auth.revocation_endpoint ? { revocationEndpoint: auth.revocation_endpoint } : {}),
        ...(auth.client_id ? { clientId: auth.client_id } : {}),
        ...(auth.client_secret
          ? { clientSecret: this.o.secrets.resolve(auth.client_secret, `${where}.client_secret`) }
          : {}),
        ...(auth.token_endpoint_auth_method
          ? { tokenEndpointAuthMethod: auth.token_endpoint_auth_method }
          : {}),
        scopes: defaultScopes(spec, auth),
        ...(auth.authorization_params ? { authorizationParams: auth.authorization_params } : {}),
      },
      ...(spec.transport === 'http' ? { mcpUrl: spec.url } : {}),
      redirectUri: this.redirectUri(),
      ...(metadataUrl ? { clientMetadataUrl: metadataUrl } : {}),
      clientName: 'Gatehouse',
      registrations: {
        get: async (issuer) => {
          const r = await this.o.store.connections.getClient(tenant, connector, issuer)
          return r ? this.registered(r, aad(issuer)) : undefined
        },
        put: async (issuer, c) =>
          this.registered(
            await this.o.store.connections.putClient({
              tenant,
              connector,
              issuer,
              clientId: c.clientId,
              ...(c.clientSecret
                ? { sealedSecret: await sealString(this.o.keys, c.clientSecret, aad(issuer)) }
                : {}),
              ...(c.tokenEndpointAuthMethod ? { tokenEndpointAuthMethod: c.tokenEndpointAuthMethod } : {}),
              registration: c.registration,
              createdAt: new Date().toISOString(),
            }),
            aad(issuer),
          ),
      },
      fetch: ((input: string | URL | Request, init?: RequestInit) =>
        undiciFetch(
          input as never,
          { ...(init as object), dispatcher: this.guarded } as never,
        )) as unknown as typeof fetch,
      allowInsecureRequests: true,
    })
    this.clients.set(k, { spec, client })
    return client
  }
}

function providerOf(spec: ConnectorSpec, auth: OAuth2Auth): string | undefined {
  return (
    auth.provider ??
    (spec.transport === 'builtin' ? BUILTIN_CONNECTORS[spec.builtin]?.oauth.provider : undefined)
  )
}

/**
 * Where a connector sends its users' access tokens: the MCP server (its URL as an RFC 8707
 * resource) or a builtin's API (its base URL; the default when unset).
 */
function upstreamOf(spec: ConnectorSpec): string | undefined {
  if (spec.transport === 'http') return canonicalResource(new URL(spec.url))
  if (spec.transport === 'builtin')
    return `builtin:${spec.builtin}${spec.base_url ? ` ${canonicalResource(new URL(spec.base_url))}` : ''}`
  return undefined
}

/**
 * The issuer a connector's OAuth client resolves to when its manifest settles it, as
 * OAuthClient does: `issuer` (discovery must confirm it), else the origin of the written-out or
 * preset authorization endpoint. Undefined when the upstream names it (MCP discovery).
 */
function configuredIssuer(spec: ConnectorSpec): string | undefined {
  if (spec.auth?.type !== 'oauth2') return undefined
  const auth = spec.auth
  if (auth.issuer) return issuerKey(auth.issuer)
  const provider = providerOf(spec, auth)
  const authz =
    auth.authorization_endpoint ?? (provider ? PROVIDER_PRESETS[provider]?.authorizationEndpoint : undefined)
  return authz ? issuerKey(new URL(authz).origin) : undefined
}

/** An issuer for comparison (RFC 8414 §3.3 ignores a trailing slash). */
function issuerKey(issuer: string): string {
  try {
    return new URL(issuer).href.replace(/\/+$/, '')
  } catch {
    return issuer
  }
}

function defaultScopes(spec: ConnectorSpec, auth: OAuth2Auth): string[] {
  if (auth.scopes.length) return auth.scopes
  if (spec.transport === 'builtin') return BUILTIN_CONNECTORS[spec.builtin]?.oauth.defaultScopes ?? []
  return []
}

function toolScopes(spec: ConnectorSpec, tool: string): string[] {
  return spec.auth?.type === 'oauth2' ? (spec.auth.tool_scopes?.[tool] ?? []) : []
}

function credentialOf(ctx: CallContext, rec: ConnectionRecord, tokens: Sealed): AttachedCredential {
  return {
    key: `${ctx.tenant}\u0000${rec.userId}`,
    accessToken: tokens.a,
    connectionId: rec.id,
    version: rec.version,
  }
}

/** A context for the connection's owner (audit rows and refreshes outside a call). */
function ownerContext(rec: ConnectionRecord): CallContext {
  const [kind, ...rest] = rec.userId.split(':')
  return createContext({
    tenant: rec.tenant,
    principal: {
      kind: (['user', 'service', 'system'].includes(kind!) ? kind : 'user') as 'user' | 'service' | 'system',
      id: rest.join(':'),
    },
    roles: [],
  })
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])]
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
