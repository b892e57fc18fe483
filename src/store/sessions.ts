/**
 * MCP 2025-11-25 sessions shared by replicas (src/mcp/sessions.ts). A session's id is sealed and
 * carries what is needed to rebuild it anywhere (tenant, owner, scope, the client's initialize);
 * the store holds only what must be shared:
 *
 * - a row per live session, whose absence means "ended": terminated with DELETE, expired after
 *   being idle, or never opened. A replica checks it before serving a session it has not checked
 *   lately, and moves its expiry on as the session is used (idle expiry across replicas);
 * - the sessions' SSE events (one increasing sequence, ordered per stream), so a stream written
 *   on one replica can be resumed with Last-Event-ID on another. Bounded per stream and by age
 *   by the cluster-wide sweeper.
 *
 * Methods are scoped by the session's tenant and owner (a `SessionRef`): a reference naming the
 * right key with another tenant or owner sees nothing, exactly like an unknown key. Only the
 * gateway's MCP layer writes here; `sweep` is the one cross-tenant method (a system job).
 */
export interface SessionRef {
  /** The session's random key (inside the sealed id), not the sealed id itself. */
  key: string
  tenant: string
  /** The principal that opened the session (mcp/handlers.ts ownerOf). */
  owner: string
}

/** One stored SSE event: its id (decimal text, increasing), its stream, the JSON-RPC message as JSON text. */
export interface SessionEvent {
  id: string
  stream: string
  message: string
}

export interface SessionSweep {
  /** Events older than this (ms) are deleted. */
  maxEventAgeMs: number
  /** Each stream keeps at most its newest this many events. */
  perStream: number
}

export interface SessionStore {
  /** Records a new live session that ends at `expiresAtMs` unless touched; opening a key again is a no-op. */
  open(s: SessionRef, nowMs: number, expiresAtMs: number): Promise<void>
  /**
   * Whether the session is live at `nowMs` (opened, not terminated, not expired). With
   * `expiresAtMs`, a live session's expiry also moves there (never earlier than it was).
   */
  touch(s: SessionRef, nowMs: number, expiresAtMs?: number): Promise<boolean>
  /** Ends the session for every replica and drops its events; false when it was not live. */
  terminate(s: SessionRef, nowMs: number): Promise<boolean>
  /** Appends an event to one of the session's streams and returns its id. */
  appendEvent(s: SessionRef, stream: string, message: string, nowMs: number): Promise<string>
  /** The stream of one of this live session's events; undefined for an unknown id or another session's. */
  streamOf(s: SessionRef, eventId: string, nowMs: number): Promise<string | undefined>
  /** Events of one of this live session's streams after `afterId` ('0': from the start), oldest first, at most `limit` (default 1000). */
  eventsAfter(
    s: SessionRef,
    stream: string,
    afterId: string,
    nowMs: number,
    limit?: number,
  ): Promise<SessionEvent[]>
  /** The newest event id of a stream, or '0' when it has none (a live tail starts there). */
  lastEventId(s: SessionRef, stream: string): Promise<string>
  /**
   * The cluster-wide sweep: deletes expired sessions, the events of ended sessions, events older
   * than `maxEventAgeMs`, and each stream's events beyond its newest `perStream`. Returns counts.
   */
  sweep(nowMs: number, opts: SessionSweep): Promise<{ sessions: number; events: number }>
}

/** Event ids are positive decimal integers as text; anything else names no event. */
export function parseEventId(id: string): number | undefined {
  if (!/^[1-9][0-9]{0,15}$/.test(id)) return undefined
  return Number(id)
}
