import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server'

/**
 * Bounded in-memory store behind SSE resumability (Last-Event-ID) of 2025-era sessions.
 * Each stream keeps its last `perStream` events; streams are dropped with their session.
 */
export class MemoryEventStore implements EventStore {
  private seq = 0
  private readonly events = new Map<string, { stream: string; message: JSONRPCMessage }>()
  private readonly streams = new Map<string, string[]>()

  constructor(private readonly perStream = 500) {}

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}:${++this.seq}`
    this.events.set(id, { stream: streamId, message })
    let list = this.streams.get(streamId)
    if (!list) this.streams.set(streamId, (list = []))
    list.push(id)
    if (list.length > this.perStream) this.events.delete(list.shift()!)
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

  /** Forget every stream whose id starts with `prefix` (a closed session). */
  dropStreams(prefix: string): void {
    for (const [stream, ids] of this.streams) {
      if (!stream.startsWith(prefix)) continue
      for (const id of ids) this.events.delete(id)
      this.streams.delete(stream)
    }
  }

  get size(): number {
    return this.events.size
  }
}
