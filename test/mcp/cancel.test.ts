import { describe, expect, it } from 'vitest'
import { Cancellation } from '../../src/upstream/cancel.js'

describe('Cancellation', () => {
  it('runs each listener once, on the first abort only, and honours removal', () => {
    const c = new Cancellation()
    const seen: string[] = []
    const a = () => seen.push('a')
    const b = () => seen.push('b')
    c.addEventListener('abort', a)
    c.addEventListener('abort', b)
    c.removeEventListener('abort', b)
    expect(c.aborted).toBe(false)
    c.abort('stop')
    c.abort('again')
    expect(seen).toEqual(['a'])
    expect(c.aborted).toBe(true)
    expect(c.reason).toBe('stop')
    c.addEventListener('abort', () => seen.push('late'))
    expect(seen).toEqual(['a'])
  })
})
