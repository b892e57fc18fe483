export interface SseEvent {
  id?: string
  event: string
  data: unknown
}

/** Parses one SSE frame (lines up to a blank line); comment-only frames return undefined. */
function parseFrame(frame: string): SseEvent | undefined {
  let id: string | undefined
  let event = 'message'
  const data: string[] = []
  for (const line of frame.split('\n')) {
    if (!line || line.startsWith(':')) continue
    const i = line.indexOf(':')
    const field = i === -1 ? line : line.slice(0, i)
    const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '')
    if (field === 'id') id = value
    else if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  if (!data.length && id === undefined) return undefined
  const raw = data.join('\n')
  let parsed: unknown = raw
  try {
    parsed = JSON.parse(raw)
  } catch {
    // not JSON
  }
  return { ...(id !== undefined ? { id } : {}), event, data: parsed }
}

/**
 * Reads a text/event-stream until the server ends it (or `until` says stop, or the timeout).
 * `comments` counts keep-alive comment frames.
 */
export async function readSse(
  url: string,
  headers: Record<string, string>,
  opts: { until?: (e: SseEvent) => boolean; timeoutMs?: number; onComment?: () => void } = {},
): Promise<SseEvent[]> {
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 20_000)
  const res = await fetch(url, { headers, signal: ac.signal })
  if (res.status !== 200) {
    clearTimeout(timer)
    throw new Error(`SSE ${url}: HTTP ${res.status} ${await res.text()}`)
  }
  const events: SseEvent[] = []
  const decoder = new TextDecoder()
  let buf = ''
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true })
      let end: number
      while ((end = buf.indexOf('\n\n')) !== -1) {
        const frame = buf.slice(0, end)
        buf = buf.slice(end + 2)
        const e = parseFrame(frame)
        if (!e) {
          if (frame.startsWith(':')) opts.onComment?.()
          continue
        }
        events.push(e)
        if (opts.until?.(e)) {
          ac.abort()
          return events
        }
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err
  } finally {
    clearTimeout(timer)
  }
  return events
}
