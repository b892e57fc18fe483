import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server'

export interface MemoryEventStoreOptions {
  /** Events kept per stream (a long stream keeps its newest). */
  perStream?: number
  /** Events kept in all; the oldest go first. The SDK opens a new stream per POST, so this is what bounds memory. */
  maxEvents?: number
}

interface Stored {
  session: string
  stream: string
  message: JSONRPCMessage
}

/**
 * Bounded in-memory store behind SSE resumability (Last-Event-ID) of 2025-era sessions in one
 * process (SQLite deployments; replicas use the shared store, src/mcp/sessions.ts). Events belong
 * to a session: a Last-Event-ID of one session never replays another's (every session's standalone
 * GET stream has the same SDK stream id). A client can resume a stream while its events are still
 * among the newest `maxEvents`.
 */
export class MemoryEventStore {
  private seq = 0
  /** Insertion-ordered: the first entry is the oldest event. */
  private readonly events = new Map<string, Stored>()
  /** Event ids of each `{session}\n{stream}`, oldest first. */
  private readonly streams = new Map<string, string[]>()
  private readonly perStream: number
  private readonly maxEvents: number

  constructor({ perStream = 500, maxEvents = 20_000 }: MemoryEventStoreOptions = {}) {
    this.perStream = perStream
    this.maxEvents = maxEvents
  }

  /** The SDK's view of one session's events. */
  forSession(session: string): EventStore {
    return {
      storeEvent: async (stream, message) => this.store(session, stream, message),
      getStreamIdForEventId: async (eventId) => this.streamOf(session, eventId),
      replayEventsAfter: async (lastEventId, { send }) => this.replayAfter(session, lastEventId, send),
    }
  }

  store(session: string, stream: string, message: JSONRPCMessage): string {
    const id = String(++this.seq)
    this.events.set(id, { session, stream, message })
    const key = `${session}\n${stream}`
    let list = this.streams.get(key)
    if (!list) this.streams.set(key, (list = []))
    list.push(id)
    if (list.length > this.perStream) this.events.delete(list.shift()!)
    while (this.events.size > this.maxEvents) this.evictOldest()
    return id
  }

  streamOf(session: string, eventId: string): string | undefined {
    const ev = this.events.get(eventId)
    return ev?.session === session ? ev.stream : undefined
  }

  /** Sends the session's events after `lastEventId` on its stream; returns the stream, or '' for an unknown id. */
  async replayAfter(
    session: string,
    lastEventId: string,
    send: (id: string, message: JSONRPCMessage) => Promise<void>,
  ): Promise<string> {
    const ev = this.events.get(lastEventId)
    if (!ev || ev.session !== session) return ''
    const list = this.streams.get(`${session}\n${ev.stream}`) ?? []
    for (const id of list.slice(list.indexOf(lastEventId) + 1)) {
      const e = this.events.get(id)
      if (e) await send(id, e.message)
    }
    return ev.stream
  }

  /** Drops a session's events (it ended). */
  dropSession(session: string): void {
    const prefix = `${session}\n`
    for (const [key, ids] of this.streams) {
      if (!key.startsWith(prefix)) continue
      for (const id of ids) this.events.delete(id)
      this.streams.delete(key)
    }
  }

  get size(): number {
    return this.events.size
  }

  get streamCount(): number {
    return this.streams.size
  }

  private evictOldest(): void {
    const first = this.events.keys().next()
    if (first.done) return
    const ev = this.events.get(first.value)!
    this.events.delete(first.value)
    const key = `${ev.session}\n${ev.stream}`
    const list = this.streams.get(key)
    if (!list) return
    const i = list.indexOf(first.value)
    if (i !== -1) list.splice(i, 1)
    if (!list.length) this.streams.delete(key)
  }
}
