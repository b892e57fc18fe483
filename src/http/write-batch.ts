import type { ServerResponse } from 'node:http'

/**
 * Ends complete responses in one burst per event-loop turn instead of one at a time.
 *
 * On loopback (and on any host where the client or the upstream shares the machine), every
 * socket write that finds its reader asleep wakes it up, and the writer pays for the wake-up: an
 * inter-processor interrupt and the reader's receive path, on the writer's CPU. Under load the
 * gateway finishes calls one after another, spaced by its own work on each, so a client that is
 * faster than the gateway falls asleep between two answers and is woken for every one. Answers
 * queued here go out together after the event loop's poll phase (`setImmediate`), in the same
 * loop turn that finished them: the first write wakes the reader, the next ones find it awake.
 * Measured with bench/cpu-per-call.mjs: ~0.8× the gateway's CPU per call at 64 connections; the
 * latency added is the rest of the turn's work, tens of microseconds.
 *
 * Only for a response whose status and headers are set and whose whole body is known, and that
 * nothing else writes to afterwards (the MCP tool-call answers).
 */
const queue: Array<ServerResponse | string | Buffer> = []
let scheduled = false

function flush(): void {
  scheduled = false
  // Responses queued while flushing (by a 'finish' listener, say) go out in the next turn.
  const n = queue.length
  for (let i = 0; i < n; i += 2) {
    const res = queue[i] as ServerResponse
    const body = queue[i + 1] as string | Buffer
    if (res.writableEnded || res.destroyed) continue
    try {
      res.end(body)
    } catch (err) {
      res.destroy(err as Error)
    }
  }
  queue.splice(0, n)
}

/** Ends `res` with `body` at the end of this event-loop turn, together with the turn's other answers. */
export function endSoon(res: ServerResponse, body: string | Buffer): void {
  queue.push(res, body)
  if (!scheduled) {
    scheduled = true
    setImmediate(flush)
  }
}

/** How many responses wait for the end of this turn (for tests). */
export function pendingEnds(): number {
  return queue.length / 2
}
