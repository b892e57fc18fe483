import { describe, expect, it } from 'vitest'
import { LineSplitter } from '../../src/upstream/lines.js'

describe('LineSplitter', () => {
  it('splits across chunks, strips CR, and keeps multibyte characters whole', () => {
    const lines: string[] = []
    const s = new LineSplitter(
      1024,
      (l) => lines.push(l),
      () => lines.push('OVERFLOW'),
    )
    const text = Buffer.from('{"a":"é"}\r\n{"b":2}\n{"c"')
    s.push(text.subarray(0, 7)) // splits the two bytes of é
    s.push(text.subarray(7))
    s.push(Buffer.from(':3}\n'))
    expect(lines).toEqual(['{"a":"é"}', '{"b":2}', '{"c":3}'])
  })

  it('reports a line over the limit without buffering it whole', () => {
    let overflowed = 0
    const lines: string[] = []
    const s = new LineSplitter(
      100,
      (l) => lines.push(l),
      () => overflowed++,
    )
    for (let i = 0; i < 10; i++) s.push(Buffer.alloc(50, 0x61))
    expect(overflowed).toBeGreaterThan(0)
    s.push(Buffer.from('\nok\n'))
    expect(lines.at(-1)).toBe('ok')
  })
})
