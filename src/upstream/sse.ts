/**
 * A minimal incremental parser for text/event-stream (WHATWG): yields each event's data and id.
 * Hand-written because it sits on the hot path and only `data`/`id`/`event` matter here.
 */
export interface SseEvent {
  id?: string
  event?: string
  data: string
}

export class SseParser {
  constructor(private readonly maxEventBytes = 32 * 1024 * 1024) {}

  /** The last `retry:` the server asked for (ms), if any. */
  retryMs: number | undefined
  private buf = ''
  private data: string[] = []
  private id: string | undefined
  private event: string | undefined
  /** Characters of data lines accumulated for the event in progress. */
  private pending = 0

  /** Feeds a chunk; returns the events completed by it. */
  push(chunk: string): SseEvent[] {
    this.buf += chunk
    if (this.buf.length + this.pending > this.maxEventBytes)
      throw new Error(`upstream SSE event over ${this.maxEventBytes} bytes`)
    const out: SseEvent[] = []
    let nl: number
    while ((nl = this.buf.search(/\r\n|\n|\r/)) !== -1) {
      const line = this.buf.slice(0, nl)
      const sep = this.buf[nl] === '\r' && this.buf[nl + 1] === '\n' ? 2 : 1
      // A lone trailing \r may be the first half of \r\n: wait for more input.
      if (this.buf[nl] === '\r' && nl + 1 === this.buf.length) break
      this.buf = this.buf.slice(nl + sep)
      if (line === '') {
        if (this.data.length) {
          out.push({
            data: this.data.join('\n'),
            ...(this.id !== undefined ? { id: this.id } : {}),
            ...(this.event ? { event: this.event } : {}),
          })
        }
        this.data = []
        this.pending = 0
        this.event = undefined
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      let value = colon === -1 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'data') {
        this.data.push(value)
        this.pending += value.length
      } else if (field === 'id') this.id = value
      else if (field === 'event') this.event = value
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value)
    }
    return out
  }
}
