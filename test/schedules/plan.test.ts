import { describe, expect, it } from 'vitest'
import { compileCron } from '../../src/manifests/schema.js'
import { MAX_SCAN, nextAfter, planTicks } from '../../src/schedules/plan.js'

const ms = (iso: string) => Date.parse(iso)
const iso = (n: number) => new Date(n).toISOString()

describe('next-tick computation', () => {
  it('reads the expression in its time zone, daylight saving included', () => {
    const ny = compileCron('0 0 9 * * *', 'America/New_York')
    // 9:00 EST is 14:00Z; after the switch on 2025-03-09, 9:00 EDT is 13:00Z.
    expect(iso(nextAfter(ny, ms('2025-03-08T00:00:00Z'))!)).toBe('2025-03-08T14:00:00.000Z')
    expect(iso(nextAfter(ny, ms('2025-03-08T14:00:00Z'))!)).toBe('2025-03-09T13:00:00.000Z')
    const utc = compileCron('0 0 9 * * *', 'UTC')
    expect(iso(nextAfter(utc, ms('2025-03-08T14:00:00Z'))!)).toBe('2025-03-09T09:00:00.000Z')
    // 5 fields: minute precision; Kolkata is UTC+5:30.
    const kol = compileCron('0 9 * * 1', 'Asia/Kolkata')
    expect(iso(nextAfter(kol, ms('2025-01-01T00:00:00Z'))!)).toBe('2025-01-06T03:30:00.000Z')
    // A tick is strictly after the reference, so one tick is never computed twice.
    const sec = compileCron('* * * * * *', 'UTC')
    expect(iso(nextAfter(sec, ms('2025-01-01T00:00:00.000Z'))!)).toBe('2025-01-01T00:00:01.000Z')
    expect(iso(nextAfter(sec, ms('2025-01-01T00:00:00.400Z'))!)).toBe('2025-01-01T00:00:01.000Z')
  })

  it('a pass takes every due tick once and points at the next one', () => {
    const sec = compileCron('* * * * * *', 'UTC')
    const t = ms('2025-01-01T00:00:00Z')
    expect(planTicks(sec, t + 1000, t + 500, 2000)).toEqual({ onTime: [], missed: 0, next: t + 1000 })
    expect(planTicks(sec, t, t + 1500, 2000)).toEqual({ onTime: [t, t + 1000], missed: 0, next: t + 2000 })
    // A never-again expression leaves nothing next.
    expect(planTicks(sec, undefined, t, 2000)).toEqual({ onTime: [], missed: 0 })
  })

  it('ticks later than the grace period are missed, and the latest missed one is named', () => {
    const fiveMin = compileCron('*/5 * * * *', 'UTC')
    const t = ms('2025-01-01T00:00:00Z')
    // Down from 00:00 to 00:21:00.5: 00:00 … 00:20 are due and all later than 2 s.
    const p = planTicks(fiveMin, t, t + 21 * 60_000 + 500, 2000)
    expect(p.missed).toBe(5)
    expect(iso(p.latestMissed!)).toBe('2025-01-01T00:20:00.000Z')
    expect(p.onTime.map(iso)).toEqual([])
    expect(iso(p.next!)).toBe('2025-01-01T00:25:00.000Z')
    const q = planTicks(fiveMin, t, t + 20 * 60_000 + 500, 2000)
    // At 00:20:00.5 the 00:20 tick is on time; the four before it are missed.
    expect(q.onTime.map(iso)).toEqual(['2025-01-01T00:20:00.000Z'])
    expect(q.missed).toBe(4)
    expect(iso(q.latestMissed!)).toBe('2025-01-01T00:15:00.000Z')
  })

  it('a long downtime of a per-second schedule is not walked tick by tick', () => {
    const sec = compileCron('* * * * * *', 'UTC')
    const t = ms('2025-01-01T00:00:00Z')
    const now = t + 86_400_000 + 300 // one day later
    const started = performance.now()
    const p = planTicks(sec, t, now, 2000)
    expect(performance.now() - started).toBeLessThan(500)
    expect(p.missed).toBeGreaterThanOrEqual(MAX_SCAN)
    expect(iso(p.latestMissed!)).toBe(iso(t + 86_400_000 - 2000))
    expect(p.onTime.map(iso)).toEqual([iso(t + 86_400_000 - 1000), iso(t + 86_400_000)])
    expect(iso(p.next!)).toBe(iso(t + 86_401_000))
  })
})
