import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { timeOrderedTraceId, uuidV7 } from '../../src/ids.js'
import { createLogger } from '../../src/log.js'
import { Batcher } from '../../src/telemetry/batch.js'

describe('time-ordered ids', () => {
  it('uuidV7 is an RFC 9562 version 7 UUID whose first 48 bits are the milliseconds', () => {
    const at = Date.UTC(2026, 10, 24, 13, 0, 0, 123)
    const ids = Array.from({ length: 2000 }, () => uuidV7(at))
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at)
    }
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('orders ids of different milliseconds by time, as strings', () => {
    const ids = [1, 2, 10, 255, 256, 4096, 1_700_000_000_000].map((t) => uuidV7(t))
    expect([...ids].sort()).toEqual(ids)
  })

  it('trace ids are 32 lowercase hex digits, never all zero, unique, led by the time and the version digit (across pool refills)', () => {
    const at = Date.UTC(2026, 10, 24)
    const ids = Array.from({ length: 2000 }, () => timeOrderedTraceId(at))
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{32}$/)
      expect(id).not.toBe('0'.repeat(32))
      expect(parseInt(id.slice(0, 12), 16)).toBe(at)
      expect(id[12]).toBe('7')
    }
    expect(new Set(ids).size).toBe(ids.length)
  })
})

describe('Batcher', () => {
  const logger = createLogger('silent')

  it('writes a batch once maxBatch items are queued, in order, without a write per extra item', async () => {
    const written: number[][] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const b = new Batcher<number>({
      write: async (items) => {
        written.push(items)
        if (written.length === 1) await gate
      },
      logger,
      what: 'test',
      flushMs: 60_000,
      maxBatch: 4,
    })
    for (let i = 0; i < 4; i++) b.push(i)
    await new Promise((r) => setImmediate(r))
    expect(written).toEqual([[0, 1, 2, 3]])
    // The first write is still running: everything pushed meanwhile goes out as one next batch.
    for (let i = 4; i < 20; i++) b.push(i)
    release()
    await b.close()
    expect(written).toEqual([[0, 1, 2, 3], Array.from({ length: 16 }, (_, i) => i + 4)])
  })

  it('a failed write drops that batch only, logs it, and later batches still go out', async () => {
    const lines: string[] = []
    const log = createLogger(
      'error',
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk))
          cb()
        },
      }),
    )
    const written: string[][] = []
    const b = new Batcher<string>({
      write: async (items) => {
        if (items.includes('bad')) throw new Error('disk full')
        written.push(items)
      },
      logger: log,
      what: 'test',
      flushMs: 60_000,
      maxBatch: 2,
    })
    b.push('bad')
    b.push('x')
    await b.flush()
    b.push('good')
    await b.close()
    expect(written).toEqual([['good']])
    expect(lines.join('')).toContain('test write failed; batch dropped')
  })
})
