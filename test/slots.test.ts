import { describe, expect, it } from 'vitest'
import { Slots } from '../src/slots.js'

describe('Slots', () => {
  it('adds, removes and reuses slots, counting what it holds', () => {
    const s = new Slots<{ n: number }>()
    const a = s.add({ n: 1 })
    const b = s.add({ n: 2 })
    expect(s.size).toBe(2)
    expect(s.only()).toBeUndefined()
    s.remove(a)
    s.remove(a) // twice: no effect
    expect(s.size).toBe(1)
    expect(s.only()).toEqual({ n: 2 })
    const c = s.add({ n: 3 })
    expect(c).toBe(a) // the freed slot, not a new one
    expect(s.find((v) => v.n === 3)).toEqual({ n: 3 })
    expect(s.find((v) => v.n === 1)).toBeUndefined()
    expect([...s.values()].map((v) => v.n)).toEqual([3, 2])
    s.remove(b)
    s.remove(c)
    expect(s.size).toBe(0)
    expect(s.only()).toBeUndefined()
  })

  it('keeps its array bounded by the most held at once, however many come and go', () => {
    const s = new Slots<object>()
    const held: number[] = []
    for (let i = 0; i < 10_000; i++) {
      held.push(s.add({}))
      if (held.length > 64) s.remove(held.shift()!)
    }
    expect(s.size).toBe(64)
    expect((s as unknown as { items: unknown[] }).items.length).toBe(65)
  })
})
