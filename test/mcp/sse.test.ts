import { describe, expect, it } from 'vitest'
import { SseParser, type SseEvent } from '../../src/upstream/sse.js'

/** Feeds `text` in pieces of `size` characters (then ends the stream); returns every event. */
function parse(text: string, size = text.length, parser = new SseParser()): SseEvent[] {
  const out: SseEvent[] = []
  for (let i = 0; i < text.length; i += size) out.push(...parser.push(text.slice(i, i + size)))
  out.push(...parser.end())
  return out
}

const STREAM =
  ': comment\n' +
  'id: 1\nevent: message\ndata: {"a":1}\n\n' +
  'data: line one\ndata: line two\n\n' +
  'retry: 1500\nid: 2\ndata:no space\n\n'

const EXPECTED: SseEvent[] = [
  { id: '1', event: 'message', data: '{"a":1}' },
  { data: 'line one\nline two' },
  { id: '2', data: 'no space' },
]

describe('SseParser', () => {
  it('reads events, comments, multi-line data, ids and retry', () => {
    const p = new SseParser()
    expect(parse(STREAM, STREAM.length, p)).toEqual(EXPECTED)
    expect(p.retryMs).toBe(1500)
  })

  it('gives the same events for LF, CRLF and CR line endings, split at every character', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = STREAM.replace(/\n/g, eol)
      for (const size of [1, 2, 3, 7, text.length]) {
        expect(parse(text, size), `${JSON.stringify(eol)} in pieces of ${size}`).toEqual(EXPECTED)
      }
    }
  })

  it('skips a leading byte order mark', () => {
    expect(parse('\uFEFFdata: {"jsonrpc":"2.0"}\n\n')).toEqual([{ data: '{"jsonrpc":"2.0"}' }])
  })

  it('ends an event whose blank line is a CR at the very end of the stream', () => {
    const p = new SseParser()
    expect(p.push('data: a\r\r')).toEqual([])
    expect(p.end()).toEqual([{ data: 'a' }])
  })

  it('drops an event the stream cut off before its blank line', () => {
    expect(parse('data: complete\n\ndata: cut off\n')).toEqual([{ data: 'complete' }])
  })

  it('keeps a long data line fed in many chunks whole', () => {
    const chunk = 'x'.repeat(64 * 1024)
    const p = new SseParser()
    expect(p.push('data: ')).toEqual([])
    for (let i = 0; i < 64; i++) expect(p.push(chunk)).toEqual([])
    const [ev] = p.push('\n\n')
    expect(ev!.data.length).toBe(64 * 64 * 1024)
  })

  it('refuses an event over its size limit', () => {
    const p = new SseParser(1000)
    expect(() => {
      p.push('data: ')
      for (let i = 0; i < 20; i++) p.push('y'.repeat(100))
    }).toThrow('upstream SSE event over 1000 bytes')
  })
})
