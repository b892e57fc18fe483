import type { CallContext } from '../context.js'
import type { Envelope } from '../vault/envelope.js'

/**
 * Per-user upstream accounts (token brokering): one connection per (tenant, user, connector),
 * its token set envelope-encrypted (vault/envelope.ts, AAD `connectionAad`), the OAuth
 * authorization states in flight, and the OAuth clients registered with providers. Nothing here
 * holds a plaintext secret: the store refuses values that are not sealed. Timestamps are
 * ISO-8601 UTC. Which user may see which connection is the caller's decision (filter by
 * `userId`); the store confines every context method to the caller's tenant.
 */

export interface ConnectionRecord {
  id: string
  tenant: string
  userId: string
  connector: string
  /** Issuer (or token endpoint) the tokens came from. */
  provider: string
  /** Upstream account label, metadata only (e.g. a GitHub login). */
  account?: string
  scopes: string[]
  /** The token set, envelope-encrypted with connectionAad(...). */
  sealed: Envelope
  /** Access-token expiry, ISO-8601 UTC. */
  expiresAt?: string
  hasRefreshToken: boolean
  /** A process is refreshing the tokens until then (ISO); others wait for the next version. */
  refreshLockedUntil?: string
  /** Compare-and-swap counter, starts at 1. */
  version: number
  createdAt: string
  updatedAt: string
}

export type NewConnection = Omit<
  ConnectionRecord,
  'version' | 'createdAt' | 'updatedAt' | 'refreshLockedUntil'
>

export interface ConnectionUpdate {
  sealed: Envelope
  /** undefined: unchanged; null: cleared. */
  expiresAt?: string | null
  scopes?: string[]
  hasRefreshToken?: boolean
  account?: string
  /** undefined: unchanged; null: released. */
  refreshLockedUntil?: string | null
}

export interface OAuthStateRecord {
  /** sha256 hex of the state parameter (the raw state is never stored). */
  id: string
  tenant: string
  userId: string
  connector: string
  /** PKCE verifier, sealed by the caller (`sealString` with `oauthStateAad`). */
  sealedVerifier: string
  redirectUri: string
  scopes: string[]
  issuer: string
  resource?: string
  returnTo?: string
  expiresAt: string
  createdAt: string
}

export interface OAuthClientRecord {
  tenant: string
  connector: string
  issuer: string
  clientId: string
  /** Sealed by the caller (`sealString` with `oauthClientAad`); `keys rotate-master` re-wraps it. */
  sealedSecret?: string
  tokenEndpointAuthMethod?: string
  /** The registration response minus secrets. */
  registration: Record<string, unknown>
  createdAt: string
}

export interface ConnectionStore {
  /** Creates or replaces the connection of (tenant, userId, connector): a replacement is a new row (new id, version 1). Returns the stored record and the one it replaced. */
  save(c: NewConnection): Promise<{ record: ConnectionRecord; replaced?: ConnectionRecord }>
  find(tenant: string, userId: string, connector: string): Promise<ConnectionRecord | undefined>
  /** Caller's tenant only. */
  get(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined>
  /** Caller's tenant only, newest first (by creation). */
  list(ctx: CallContext, filter?: { userId?: string; connector?: string }): Promise<ConnectionRecord[]>
  /** Compare-and-swap on version: applies and bumps version when it still equals expectedVersion; otherwise undefined. */
  update(id: string, expectedVersion: number, u: ConnectionUpdate): Promise<ConnectionRecord | undefined>
  /**
   * Key rotation: swaps in a re-wrapped envelope (same ciphertext, new keyId and wrappedKey) when
   * the row still has `expectedVersion` and that ciphertext. The version is NOT bumped, so a
   * broker that read the row before keeps its compare-and-swap (and its refresh) valid; its
   * own later update simply replaces the envelope. False when the row changed or is gone.
   */
  rewrap(id: string, expectedVersion: number, sealed: Envelope): Promise<boolean>
  /** Caller's tenant only. */
  delete(ctx: CallContext, id: string): Promise<ConnectionRecord | undefined>
  /** Deletes the row if it still has that version (used after a refresh finds the grant revoked). */
  deleteIfVersion(id: string, expectedVersion: number): Promise<boolean>
  /** Every connection of every tenant, paged by id (key rotation). */
  scan(afterId: string | undefined, limit: number): Promise<ConnectionRecord[]>

  putState(s: OAuthStateRecord): Promise<void>
  /** Consumes a state: deletes and returns it (exactly one caller ever gets it, across processes). Expired states are deleted and not returned. */
  takeState(id: string, nowIso: string): Promise<OAuthStateRecord | undefined>
  /** Deletes expired states; returns how many. */
  pruneStates(nowIso: string): Promise<number>

  getClient(tenant: string, connector: string, issuer: string): Promise<OAuthClientRecord | undefined>
  /** Stores a dynamic/CIMD registration; the first writer wins, and everyone gets the stored one back. */
  putClient(r: OAuthClientRecord): Promise<OAuthClientRecord>
  /** Every stored client (key rotation re-seals secrets). */
  scanClients(): Promise<OAuthClientRecord[]>
  updateClientSecret(tenant: string, connector: string, issuer: string, sealedSecret: string): Promise<void>
}
