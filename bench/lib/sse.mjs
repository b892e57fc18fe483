/**
 * A minimal incremental Server-Sent Events parser (WHATWG event-stream format): feed it chunks as
 * they arrive, it calls `onEvent({ id, event, data })` for each complete event. Comment lines
 * (`: keep-alive`) are ignored; `data` lines are joined with '\n'; `event` defaults to 'message'.
 */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent
    this.buf = ''
    this.reset()
  }

  reset() {
    this.id = undefined
    this.event = undefined
    this.data = undefined
  }

  push(chunk) {
    this.buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
    let start = 0
    for (;;) {
      const nl = this.buf.indexOf('\n', start)
      if (nl === -1) break
      let line = this.buf.slice(start, nl)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      start = nl + 1
      this.line(line)
    }
    this.buf = this.buf.slice(start)
  }

  line(line) {
    if (line === '') {
      if (this.data !== undefined || this.event !== undefined)
        this.onEvent({ id: this.id, event: this.event ?? 'message', data: this.data ?? '' })
      this.reset()
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') this.data = this.data === undefined ? value : `${this.data}\n${value}`
    else if (field === 'event') this.event = value
    else if (field === 'id') this.id = value
  }
}
