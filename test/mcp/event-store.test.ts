import { describe, expect, it } from 'vitest'
import { MemoryEventStore } from '../../src/mcp/event-store.js'

const msg = (n: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/message', params: { n } })

describe('MemoryEventStore', () => {
  it('replays exactly the events after Last-Event-ID on the same stream', async () => {
    const s = new MemoryEventStore().forSession('s1')
    const a1 = await s.storeEvent('a', msg(1))
    await s.storeEvent('b', msg(99))
    const a2 = await s.storeEvent('a', msg(2))
    const a3 = await s.storeEvent('a', msg(3))
    const got: string[] = []
    expect(await s.replayEventsAfter(a1, { send: async (id) => void got.push(id) })).toBe('a')
    expect(got).toEqual([a2, a3])
    expect(await s.replayEventsAfter('unknown', { send: async () => {} })).toBe('')
  })

  it("never replays another session's events, though every session's GET stream has the same SDK stream id", async () => {
    const store = new MemoryEventStore()
    const mine = store.forSession('mine')
    const theirs = store.forSession('theirs')
    const m1 = await mine.storeEvent('_GET_stream', msg(1))
    const t1 = await theirs.storeEvent('_GET_stream', msg(100))
    await theirs.storeEvent('_GET_stream', msg(101))
    const m2 = await mine.storeEvent('_GET_stream', msg(2))
    const got: unknown[] = []
    await mine.replayEventsAfter(m1, { send: async (_id, m) => void got.push(m) })
    expect(got).toEqual([msg(2)])
    // Another session's event id names nothing here.
    expect(await mine.getStreamIdForEventId!(t1)).toBeUndefined()
    expect(await mine.replayEventsAfter(t1, { send: async () => void got.push('leak') })).toBe('')
    expect(got).toEqual([msg(2)])
    expect(await mine.getStreamIdForEventId!(m2)).toBe('_GET_stream')
    store.dropSession('mine')
    expect(await mine.getStreamIdForEventId!(m2)).toBeUndefined()
    expect(await theirs.getStreamIdForEventId!(t1)).toBe('_GET_stream')
  })

  it('stays bounded when every request opens a new stream (no leak per call)', async () => {
    const store = new MemoryEventStore({ perStream: 10, maxEvents: 1000 })
    const s = store.forSession('s')
    for (let i = 0; i < 50_000; i++) await s.storeEvent(`stream-${i}`, msg(i))
    expect(store.size).toBe(1000)
    expect(store.streamCount).toBe(1000)
    for (let i = 0; i < 100; i++) await s.storeEvent('long', msg(i))
    expect(store.size).toBeLessThanOrEqual(1000)
  })
})
