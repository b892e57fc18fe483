/**
 * In-process wake-ups for run event streams and the worker. The store is the source of truth;
 * the hub only says "look again" so that a stream does not wait for its poll interval when the
 * event was written by this process. Events written by another process are picked up by polling.
 */
export class EventHub {
  private readonly waiters = new Map<string, Set<() => void>>()

  publish(key: string): void {
    const set = this.waiters.get(key)
    if (!set) return
    this.waiters.delete(key)
    for (const wake of set) wake()
  }

  /** Resolves on the next publish for `key`, after `ms`, or when `signal` aborts. */
  wait(key: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(key)
      if (!set) this.waiters.set(key, (set = new Set()))
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        const s = this.waiters.get(key)
        s?.delete(done)
        if (s && s.size === 0) this.waiters.delete(key)
        resolve()
      }
      const timer = setTimeout(done, ms)
      timer.unref?.()
      set.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
