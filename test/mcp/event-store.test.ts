import { describe, expect, it } from 'vitest'
import { MemoryEventStore } from '../../src/mcp/event-store.js'

const msg = (n: number) => ({ jsonrpc: '2.0' as const, method: 'notifications/message', params: { n } })

describe('MemoryEventStore', () => {
  it('replays exactly the events after Last-Event-ID on the same stream', async () => {
    const s = new MemoryEventStore()
    const a1 = await s.storeEvent('a', msg(1))
    await s.storeEvent('b', msg(99))
    const a2 = await s.storeEvent('a', msg(2))
    const a3 = await s.storeEvent('a', msg(3))
    const got: string[] = []
    expect(await s.replayEventsAfter(a1, { send: async (id) => void got.push(id) })).toBe('a')
    expect(got).toEqual([a2, a3])
    expect(await s.replayEventsAfter('unknown', { send: async () => {} })).toBe('')
  })

  it('stays bounded when every request opens a new stream (no leak per call)', async () => {
    const s = new MemoryEventStore({ perStream: 10, maxEvents: 1000 })
    for (let i = 0; i < 50_000; i++) await s.storeEvent(`stream-${i}`, msg(i))
    expect(s.size).toBe(1000)
    expect(s.streamCount).toBe(1000)
    for (let i = 0; i < 100; i++) await s.storeEvent('long', msg(i))
    expect(s.size).toBeLessThanOrEqual(1000)
  })
})
