/**
 * What a call can be cancelled through. An AbortSignal fits; so does `Cancellation`, which the
 * hot path uses because Node's AbortController/EventTarget costs several µs per call.
 */
export interface CancelSignal {
  readonly aborted: boolean
  readonly reason?: unknown
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/** A one-shot cancellation: listeners run once, on the first `abort`. */
export class Cancellation implements CancelSignal {
  aborted = false
  reason: unknown = undefined
  private listeners: (() => void)[] = []

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) this.listeners.push(listener)
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners.indexOf(listener)
    if (i !== -1) this.listeners.splice(i, 1)
  }

  abort(reason?: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason ?? 'cancelled'
    const ls = this.listeners
    this.listeners = []
    for (const l of ls) l()
  }
}
