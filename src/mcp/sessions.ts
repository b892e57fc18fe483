import { randomBytes } from 'node:crypto'
import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server'
import type { Notifier } from '../runs/notifier.js'
import type { SessionRef, SessionStore } from '../store/sessions.js'
import type { JsonObject } from '../upstream/rpc.js'
import type { MasterKey } from '../vault/master-key.js'
import { seal, unseal } from '../vault/seal.js'

/** Associated data of sealed session ids: a value sealed for anything else is not a session id. */
const SESSION_AAD = 'gatehouse/mcp-session'
/** Above this, the client's capabilities are kept by name only (an id travels in every request's headers). */
const MAX_INIT_JSON = 2048

/**
 * What a 2025-11-25 session id carries, sealed (AES-256-GCM under the master key, like every
 * sealed value): enough for any replica to rebuild the session and to check who may use it.
 */
export interface SessionClaims {
  /** Random key: names the session in the shared store (never the whole id). */
  k: string
  /** Tenant, owner (mcp/handlers.ts ownerOf) and virtual server of the endpoint that opened it. */
  t: string
  o: string
  s?: string
  /** The client's initialize params (protocolVersion, capabilities, clientInfo), replayed to rebuild it. */
  i: JsonObject
  /** Issued at (epoch ms). */
  at: number
}

/** Seals and opens session ids; replicas sharing the master key read each other's. */
export class SessionIds {
  constructor(private readonly keys: readonly MasterKey[]) {
    if (!keys.length) throw new Error('SessionIds needs a master key')
  }

  /** A new session's claims and its id. */
  issue(tenant: string, owner: string, server: string | undefined, init: unknown, nowMs: number) {
    const claims: SessionClaims = {
      k: randomBytes(16).toString('base64url'),
      t: tenant,
      o: owner,
      ...(server !== undefined ? { s: server } : {}),
      i: initParams(init),
      at: nowMs,
    }
    return { id: seal(this.keys[0]!, JSON.stringify(claims), SESSION_AAD), claims }
  }

  /** The claims of an id this gateway (or a replica) issued; undefined for anything else, tampered ids included. */
  open(id: string): SessionClaims | undefined {
    if (id.length > 8192 || !id.startsWith('gh1.')) return undefined
    try {
      const c = JSON.parse(unseal(this.keys, id, SESSION_AAD)) as SessionClaims
      if (typeof c.k !== 'string' || typeof c.t !== 'string' || typeof c.o !== 'string') return undefined
      return c
    } catch {
      return undefined
    }
  }
}

export const refOf = (c: SessionClaims): SessionRef => ({ key: c.k, tenant: c.t, owner: c.o })

/** The part of initialize a rebuilt session needs; oversized capabilities are kept by name. */
function initParams(init: unknown): JsonObject {
  const p = ((init as { params?: JsonObject } | undefined)?.params ?? {}) as JsonObject
  const info = (p.clientInfo ?? {}) as JsonObject
  const out: JsonObject = {
    protocolVersion: p.protocolVersion as string,
    capabilities: (p.capabilities ?? {}) as JsonObject,
    clientInfo: { name: String(info.name ?? ''), version: String(info.version ?? '') },
  }
  if (JSON.stringify(out).length > MAX_INIT_JSON) {
    const caps: JsonObject = {}
    for (const k of Object.keys(out.capabilities as JsonObject).slice(0, 20)) caps[k] = {}
    out.capabilities = caps
  }
  return out
}

/** The `mcp` notifier channel: what replicas tell each other about 2025 sessions. */
export type SessionSignal =
  /** Events were appended to the session's streams: live tails look again. */
  | { type: 'events'; key: string }
  /** The session was terminated (DELETE): drop local copies at once. */
  | { type: 'ended'; key: string }
  /** A client's notifications/cancelled: every replica holding the session delivers it. */
  | { type: 'cancel'; key: string; message: JsonObject }
  /** A client's answer to a request replica `tag` sent: stored as event `eventId` of the session's inbox stream. */
  | { type: 'answer'; key: string; tag: string; eventId: string }

export const SIGNAL_CHANNEL = 'mcp' as const

export function encodeSignal(s: SessionSignal): string {
  return JSON.stringify(s)
}

export function decodeSignal(payload: string): SessionSignal | undefined {
  try {
    const s = JSON.parse(payload) as SessionSignal
    return typeof s?.key === 'string' ? s : undefined
  } catch {
    return undefined
  }
}

/** The stream holding answers routed to replica `tag` (never sent to clients). */
export const inboxStream = (tag: string) => `_inbox:${tag}`

/**
 * The SDK's event store for one session on the shared store: every SSE event the session's
 * transport writes (on any replica) lands here, in order, and wakes live tails everywhere.
 * While `muted` (replaying initialize to rebuild a session), nothing is stored.
 */
export class SharedSessionEvents implements EventStore {
  muted = false
  private chain: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly store: SessionStore,
    private readonly ref: SessionRef,
    private readonly notifier: Notifier,
  ) {}

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    if (this.muted) return Promise.resolve('0')
    // Appends of one session are serialised, so ids increase in the order messages are sent.
    const next = this.chain.then(async () => {
      const id = await this.store.appendEvent(this.ref, streamId, JSON.stringify(message), Date.now())
      this.notifier.publish(SIGNAL_CHANNEL, encodeSignal({ type: 'events', key: this.ref.key }))
      return id
    })
    this.chain = next.catch(() => {})
    return next
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return this.store.streamOf(this.ref, eventId, Date.now())
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (id: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const stream = await this.store.streamOf(this.ref, lastEventId, Date.now())
    if (!stream) return ''
    for (const e of await this.store.eventsAfter(this.ref, stream, lastEventId, Date.now()))
      await send(e.id, JSON.parse(e.message) as JSONRPCMessage)
    return stream
  }
}

/** How long and how many SSE events of shared sessions are kept (resumption window). */
export const SESSION_EVENT_RETENTION = { maxEventAgeMs: 60 * 60_000, perStream: 500 }

/**
 * The cluster-wide sweep of shared sessions (once a minute, one replica per tick through the
 * tick ledger): expired sessions, ended sessions' events, old events, long streams' oldest.
 * A SystemJob for the Scheduler (src/schedules/scheduler.ts).
 */
export function sessionSweepJob(
  store: SessionStore,
  logger: { debug(o: object, m: string): void },
): { name: string; cron: string; run(): Promise<void> } {
  return {
    name: 'mcp-session-sweep',
    cron: '30 * * * * *',
    run: async () => {
      const n = await store.sweep(Date.now(), SESSION_EVENT_RETENTION)
      if (n.sessions || n.events) logger.debug(n, 'ended MCP sessions and old SSE events swept')
    },
  }
}
