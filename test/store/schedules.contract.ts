import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, systemContext } from '../../src/context.js'
import type { Store } from '../../src/store/types.js'

/** The schedule tick ledger: every store implementation runs this suite. */
export function schedulesContract(name: string, open: () => Promise<Store>): void {
  describe(`schedule store contract: ${name}`, () => {
    let store: Store
    const acme = createContext({ tenant: 'acme', principal: { kind: 'service', id: 'a' }, roles: ['member'] })
    const globex = createContext({
      tenant: 'globex',
      principal: { kind: 'service', id: 'g' },
      roles: ['admin'],
    })
    const tick = (tickAt: string, schedule = 'nightly', tenant = 'acme') => ({ tenant, schedule, tickAt })
    const T = '2031-05-01T10:00:00.000Z'
    const T2 = '2031-05-01T10:00:01.000Z'

    beforeEach(async () => {
      store = await open()
      for (const t of ['acme', 'globex']) await store.tenants.ensure(systemContext(), t)
    })
    afterEach(async () => store.close())

    it('a tick is claimed once: the first claimer wins, every other claim of the same instant loses', async () => {
      expect(await store.schedules.claimTick(tick(T), 'p1', 1000)).toBe(true)
      expect(await store.schedules.claimTick(tick(T), 'p2', 1001)).toBe(false)
      // The same instant written another way is the same tick.
      expect(await store.schedules.claimTick(tick('2031-05-01T12:00:00+02:00'), 'p2', 1002)).toBe(false)
      // Another tick, schedule or tenant is another row.
      expect(await store.schedules.claimTick(tick(T2), 'p2', 1003)).toBe(true)
      expect(await store.schedules.claimTick(tick(T, 'hourly'), 'p2', 1004)).toBe(true)
      expect(await store.schedules.claimTick(tick(T, 'nightly', 'globex'), 'p2', 1005)).toBe(true)
      const ticks = await store.schedules.listTicks(acme, 'nightly')
      expect(ticks.map((t) => [t.tickAt, t.owner, t.status])).toEqual([
        [T2, 'p2', 'claimed'],
        [T, 'p1', 'claimed'],
      ])
      expect(ticks[1]).toMatchObject({ tenant: 'acme', schedule: 'nightly', claimedAtMs: 1000 })
      expect(ticks[1]!.runId).toBeUndefined()
    })

    it('concurrent claims of one tick: exactly one wins', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.schedules.claimTick(tick(T), `p${i}`, 1000)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
    })

    it('outcomes are recorded by the claimer only, once', async () => {
      await store.schedules.claimTick(tick(T), 'p1', 1000)
      expect(await store.schedules.finishTick('p2', tick(T), { status: 'started', runId: 'r-x' })).toBe(false)
      expect(await store.schedules.finishTick('p1', tick(T), { status: 'started', runId: 'r1' })).toBe(true)
      expect(await store.schedules.finishTick('p1', tick(T), { status: 'failed', reason: 'again' })).toBe(
        false,
      )
      await store.schedules.claimTick(tick(T2), 'p1', 2000)
      expect(
        await store.schedules.finishTick('p1', tick(T2), { status: 'skipped', reason: 'x'.repeat(2000) }),
      ).toBe(true)
      const [second, first] = await store.schedules.listTicks(acme, 'nightly')
      expect(first).toMatchObject({ status: 'started', runId: 'r1', owner: 'p1' })
      expect(first!.reason).toBeUndefined()
      expect(second).toMatchObject({ status: 'skipped' })
      expect(second!.reason).toHaveLength(500)
      expect(second!.runId).toBeUndefined()
    })

    it('the latest tick of a schedule, and ticks are tenant-scoped', async () => {
      expect(await store.schedules.lastTick('acme', 'nightly')).toBeUndefined()
      await store.schedules.claimTick(tick(T2), 'p1', 1000)
      await store.schedules.claimTick(tick(T), 'p1', 1001)
      await store.schedules.claimTick(tick('2031-05-02T00:00:00.000Z', 'nightly', 'globex'), 'p1', 1002)
      await store.schedules.claimTick(tick('2031-05-02T00:00:00.000Z', '_sweep', '_system'), 'p1', 1003)
      expect(await store.schedules.lastTick('acme', 'nightly')).toMatchObject({ tickAt: T2 })
      expect(await store.schedules.lastTick('_system', '_sweep')).toMatchObject({
        tickAt: '2031-05-02T00:00:00.000Z',
      })
      expect(await store.schedules.listTicks(globex, 'nightly')).toHaveLength(1)
      expect(await store.schedules.listTicks(acme, 'nightly', 1)).toHaveLength(1)
      expect(await store.schedules.listTicks(acme, 'other')).toEqual([])
    })

    it('stale claims (the claimer stopped before an outcome) are taken over by exactly one caller', async () => {
      await store.schedules.claimTick(tick(T), 'dead', 1000)
      await store.schedules.claimTick(tick(T2), 'alive', 50_000)
      await store.schedules.claimTick(tick('2031-05-01T10:00:02.000Z'), 'done', 1000)
      await store.schedules.finishTick('done', tick('2031-05-01T10:00:02.000Z'), {
        status: 'started',
        runId: 'r',
      })
      const [a, b] = await Promise.all([
        store.schedules.reclaimStale('w1', 60_000, 30_000, 10),
        store.schedules.reclaimStale('w2', 60_000, 30_000, 10),
      ])
      const taken = [...a!, ...b!]
      expect(taken.map((t) => t.tickAt)).toEqual([T])
      expect(taken[0]).toMatchObject({ status: 'claimed', claimedAtMs: 60_000 })
      const winner = taken[0]!.owner
      // The old claimer is fenced out; the new one records the outcome.
      expect(await store.schedules.finishTick('dead', tick(T), { status: 'started', runId: 'late' })).toBe(
        false,
      )
      expect(await store.schedules.finishTick(winner, tick(T), { status: 'started', runId: 'r0' })).toBe(true)
      expect(await store.schedules.reclaimStale('w3', 200_000, 30_000, 10)).toMatchObject([{ tickAt: T2 }])
    })

    it('prune deletes old ticks but keeps the latest of each schedule', async () => {
      for (const [at, s] of [
        ['2031-01-01T00:00:00.000Z', 'a'],
        ['2031-01-02T00:00:00.000Z', 'a'],
        ['2031-06-01T00:00:00.000Z', 'a'],
        ['2031-01-01T00:00:00.000Z', 'b'],
      ] as const)
        await store.schedules.claimTick(tick(at, s), 'p', 1)
      expect(await store.schedules.prune('2031-03-01T00:00:00.000Z')).toBe(2)
      expect((await store.schedules.listTicks(acme, 'a')).map((t) => t.tickAt)).toEqual([
        '2031-06-01T00:00:00.000Z',
      ])
      expect((await store.schedules.listTicks(acme, 'b')).map((t) => t.tickAt)).toEqual([
        '2031-01-01T00:00:00.000Z',
      ])
    })
  })
}
