import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server'

export interface MemoryEventStoreOptions {
  /** Events kept per stream (a long stream keeps its newest). */
  perStream?: number
  /** Events kept in all; the oldest go first. The SDK opens a new stream per POST, so this is what bounds memory. */
  maxEvents?: number
}

/**
 * Bounded in-memory store behind SSE resumability (Last-Event-ID) of 2025-era sessions.
 * A client can resume a stream while its events are still among the newest `maxEvents`.
 */
export class MemoryEventStore implements EventStore {
  private seq = 0
  /** Insertion-ordered: the first entry is the oldest event. */
  private readonly events = new Map<string, { stream: string; message: JSONRPCMessage }>()
  private readonly streams = new Map<string, string[]>()
  private readonly perStream: number
  private readonly maxEvents: number

  constructor({ perStream = 500, maxEvents = 20_000 }: MemoryEventStoreOptions = {}) {
    this.perStream = perStream
    this.maxEvents = maxEvents
  }

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}:${++this.seq}`
    this.events.set(id, { stream: streamId, message })
    let list = this.streams.get(streamId)
    if (!list) this.streams.set(streamId, (list = []))
    list.push(id)
    if (list.length > this.perStream) this.events.delete(list.shift()!)
    while (this.events.size > this.maxEvents) this.evictOldest()
    return id
  }

  async getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return this.events.get(eventId)?.stream
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (id: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const ev = this.events.get(lastEventId)
    if (!ev) return ''
    const list = this.streams.get(ev.stream) ?? []
    for (const id of list.slice(list.indexOf(lastEventId) + 1)) {
      const e = this.events.get(id)
      if (e) await send(id, e.message)
    }
    return ev.stream
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
    const list = this.streams.get(ev.stream)
    if (!list) return
    const i = list.indexOf(first.value)
    if (i !== -1) list.splice(i, 1)
    if (!list.length) this.streams.delete(ev.stream)
  }
}
