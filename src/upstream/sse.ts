import { createParser, type EventSourceParser } from 'eventsource-parser'

/**
 * An incremental text/event-stream parser (WHATWG) for upstream answers and notification
 * streams, on eventsource-parser (the parser the MCP SDKs use): CR, LF and CRLF line endings,
 * events split across chunks at any character, and one long `data:` line fed in many chunks in
 * linear time (fragments are joined once, when the line ends). Added here: the leading BOM of a
 * stream decoded by Node (eventsource-parser only knows it as three bytes), the CR that ends a
 * stream, and an error once an event outgrows its limit.
 */
export interface SseEvent {
  id?: string
  event?: string
  data: string
}

export class SseParser {
  /** The last `retry:` the server asked for (ms), if any. */
  retryMs: number | undefined
  private readonly parser: EventSourceParser
  /** Events completed by the chunk being fed. */
  private out: SseEvent[] = []
  private tooBig = false
  /** The last character fed: a lone CR at the end of the stream still ends its line. */
  private lastCr = false
  /** Nothing fed yet: a byte order mark may come first (Node's utf8 decoding keeps it). */
  private first = true

  constructor(private readonly maxEventBytes = 32 * 1024 * 1024) {
    this.parser = createParser({
      onEvent: (e) => {
        const ev: SseEvent = { data: e.data }
        if (e.id !== undefined) ev.id = e.id
        if (e.event) ev.event = e.event
        this.out.push(ev)
      },
      onRetry: (ms) => {
        this.retryMs = ms
      },
      onError: (err) => {
        if (err.type === 'max-buffer-size-exceeded') this.tooBig = true
      },
      maxBufferSize: maxEventBytes,
    })
  }

  /** Feeds a chunk; returns the events completed by it. Throws once an event outgrows the limit. */
  push(chunk: string): readonly SseEvent[] {
    if (chunk === '') return EMPTY
    if (this.first) {
      this.first = false
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1)
    }
    this.parser.feed(chunk)
    this.lastCr = chunk.charCodeAt(chunk.length - 1) === 13
    return this.take()
  }

  /**
   * The stream ended: returns an event whose blank line was a CR at the very end (it could not
   * be told from the first half of CRLF before). An event without its blank line is dropped, as
   * the WHATWG rules say.
   */
  end(): readonly SseEvent[] {
    if (this.lastCr) {
      this.lastCr = false
      this.parser.feed('\n')
    }
    const out = this.take()
    this.parser.reset()
    this.first = true
    return out
  }

  private take(): readonly SseEvent[] {
    if (this.tooBig) throw new Error(`upstream SSE event over ${this.maxEventBytes} bytes`)
    if (!this.out.length) return EMPTY
    const out = this.out
    this.out = []
    return out
  }
}

const EMPTY: readonly SseEvent[] = Object.freeze([])
