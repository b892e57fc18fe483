import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { SessionRef } from '../../src/store/sessions.js'
import type { Store } from '../../src/store/types.js'

/** MCP sessions shared by replicas (liveness and SSE events): every store implementation runs this suite. */
export function sessionsContract(name: string, open: () => Promise<Store>): void {
  describe(`session store contract: ${name}`, () => {
    let store: Store
    const T = 1_900_000_000_000
    const s1: SessionRef = { key: 'k1', tenant: 'acme', owner: 'acme/service/alice' }
    const s2: SessionRef = { key: 'k2', tenant: 'acme', owner: 'acme/service/alice' }

    beforeEach(async () => {
      store = await open()
    })
    afterEach(async () => store.close())

    it('a session is live from open until it expires; touching moves its expiry on, never back', async () => {
      expect(await store.sessions.touch(s1, T)).toBe(false)
      await store.sessions.open(s1, T, T + 1000)
      await store.sessions.open(s1, T, T + 10) // again: a no-op
      expect(await store.sessions.touch(s1, T + 999)).toBe(true)
      expect(await store.sessions.touch(s1, T + 500, T + 2000)).toBe(true)
      expect(await store.sessions.touch(s1, T + 600, T + 1500)).toBe(true) // not back to 1500
      expect(await store.sessions.touch(s1, T + 1999)).toBe(true)
      expect(await store.sessions.touch(s1, T + 2000)).toBe(false)
      // An expired session cannot be revived by touching it.
      expect(await store.sessions.touch(s1, T + 2001, T + 9000)).toBe(false)
      expect(await store.sessions.touch(s1, T + 2002)).toBe(false)
    })

    it('another tenant or owner naming the key sees nothing and cannot end it', async () => {
      await store.sessions.open(s1, T, T + 1000)
      const ev = await store.sessions.appendEvent(s1, 'st', '{"a":1}', T)
      for (const other of [
        { ...s1, tenant: 'globex' },
        { ...s1, owner: 'acme/service/mallory' },
      ]) {
        expect(await store.sessions.touch(other, T)).toBe(false)
        expect(await store.sessions.touch(other, T, T + 5000)).toBe(false)
        expect(await store.sessions.streamOf(other, ev, T)).toBeUndefined()
        expect(await store.sessions.eventsAfter(other, 'st', '0', T)).toEqual([])
        expect(await store.sessions.terminate(other, T)).toBe(false)
      }
      expect(await store.sessions.touch(s1, T)).toBe(true)
    })

    it('terminate ends a session once, for everybody, and drops its events', async () => {
      await store.sessions.open(s1, T, T + 1000)
      await store.sessions.open(s2, T, T + 1000)
      const e1 = await store.sessions.appendEvent(s1, 'st', '{"n":1}', T)
      const e2 = await store.sessions.appendEvent(s2, 'st', '{"n":2}', T)
      expect(await store.sessions.terminate(s1, T + 1)).toBe(true)
      expect(await store.sessions.terminate(s1, T + 2)).toBe(false)
      expect(await store.sessions.touch(s1, T + 3)).toBe(false)
      expect(await store.sessions.touch(s1, T + 3, T + 5000)).toBe(false)
      expect(await store.sessions.streamOf(s1, e1, T + 3)).toBeUndefined()
      // Re-opening a terminated key is refused by nobody, but the gateway never reuses a key.
      expect(await store.sessions.streamOf(s2, e2, T + 3)).toBe('st')
    })

    it('events: increasing ids, per stream and per session, replayed after an id in order', async () => {
      await store.sessions.open(s1, T, T + 10_000)
      await store.sessions.open(s2, T, T + 10_000)
      const a = []
      for (let i = 0; i < 5; i++) {
        a.push(await store.sessions.appendEvent(s1, 'req-1', JSON.stringify({ i }), T + i))
        await store.sessions.appendEvent(s1, '_GET_stream', JSON.stringify({ g: i }), T + i)
        await store.sessions.appendEvent(s2, 'req-1', JSON.stringify({ other: i }), T + i)
      }
      expect(a.map(Number)).toEqual([...a.map(Number)].sort((x, y) => x - y))
      expect(new Set(a).size).toBe(5)
      expect(await store.sessions.streamOf(s1, a[2]!, T)).toBe('req-1')
      expect(await store.sessions.streamOf(s2, a[2]!, T)).toBeUndefined()
      for (const bad of ['', 'x', '0', '-1', '1.5', 'req-1:3', '99999999999999999999'])
        expect(await store.sessions.streamOf(s1, bad, T)).toBeUndefined()
      const after = await store.sessions.eventsAfter(s1, 'req-1', a[1]!, T)
      expect(after.map((e) => JSON.parse(e.message))).toEqual([{ i: 2 }, { i: 3 }, { i: 4 }])
      expect(after.map((e) => e.id)).toEqual(a.slice(2))
      expect(after.every((e) => e.stream === 'req-1')).toBe(true)
      expect(await store.sessions.eventsAfter(s1, 'req-1', a[1]!, T, 2)).toHaveLength(2)
      expect((await store.sessions.eventsAfter(s1, 'req-1', '0', T)).map((e) => e.id)).toEqual(a)
      expect(await store.sessions.eventsAfter(s1, 'req-1', 'nope', T)).toEqual([])
      expect(await store.sessions.lastEventId(s1, 'req-1')).toBe(a[4])
      expect(await store.sessions.lastEventId(s1, 'none')).toBe('0')
      // An expired session's events are not served.
      expect(await store.sessions.eventsAfter(s1, 'req-1', '0', T + 10_000)).toEqual([])
    })

    it("the sweep deletes expired sessions, ended sessions' events, old events and long streams' oldest", async () => {
      await store.sessions.open(s1, T, T + 100_000)
      await store.sessions.open(s2, T, T + 1000)
      const old = await store.sessions.appendEvent(s1, 'a', '{"old":true}', T)
      for (let i = 0; i < 6; i++) await store.sessions.appendEvent(s1, 'b', JSON.stringify({ i }), T + 50_000)
      await store.sessions.appendEvent(s2, 'a', '{}', T + 500)
      const swept = await store.sessions.sweep(T + 60_000, { maxEventAgeMs: 30_000, perStream: 4 })
      expect(swept).toEqual({ sessions: 1, events: 4 }) // s2's event, the old one, two of stream b
      expect(await store.sessions.touch(s2, T + 60_000)).toBe(false)
      expect(await store.sessions.streamOf(s1, old, T + 60_000)).toBeUndefined()
      const b = await store.sessions.eventsAfter(s1, 'b', '0', T + 60_000)
      expect(b.map((e) => JSON.parse(e.message).i)).toEqual([2, 3, 4, 5])
      expect(await store.sessions.sweep(T + 60_000, { maxEventAgeMs: 30_000, perStream: 4 })).toEqual({
        sessions: 0,
        events: 0,
      })
    })
  })
}
