/**
 * Registrations that come and go with every call on a long-lived object (the calls in flight on
 * a transport or a session), without a `Map` or `Set`.
 *
 * Why not a Set: V8 rehashes a Set or Map whose deleted entries fill its table into a new table,
 * and the old table keeps its entries and a link to the new one. Once one of those tables has
 * been promoted to the old generation (it only has to outlive two scavenges), it is dead but
 * counts as a root for every scavenge until the next full GC: it keeps the next table alive, and
 * every call object in it, which are promoted in turn, table after table. Measured on the
 * gateway under load: ~40 KB promoted per MB allocated with a per-call `Set.add`/`delete` on the
 * HTTP transport, ~1 KB without (bench/README.md, "Where the promoted garbage came from";
 * bench/set-churn.mjs). An array whose slots are cleared and reused has no such chain: a
 * replaced backing store points nowhere.
 *
 * `add` returns the slot to give back to `remove`; slots are reused, lowest-freed last.
 */
export class Slots<T> {
  private readonly items: (T | undefined)[] = []
  private readonly free: number[] = []
  private count = 0

  get size(): number {
    return this.count
  }

  add(value: T): number {
    const slot = this.free.length ? this.free.pop()! : this.items.length
    this.items[slot] = value
    this.count++
    return slot
  }

  /** Empties a slot `add` returned (a second call for the same slot does nothing). */
  remove(slot: number): void {
    if (this.items[slot] === undefined) return
    this.items[slot] = undefined
    this.free.push(slot)
    this.count--
  }

  /** The one value held, when exactly one is. */
  only(): T | undefined {
    if (this.count !== 1) return undefined
    for (const v of this.items) if (v !== undefined) return v
    return undefined
  }

  /** The values held, in slot order. */
  *values(): IterableIterator<T> {
    for (const v of this.items) if (v !== undefined) yield v
  }

  /** The first value `match` accepts (a scan of the slots: for lookups among the few in flight). */
  find(match: (value: T) => boolean): T | undefined {
    for (const v of this.items) if (v !== undefined && match(v)) return v
    return undefined
  }
}
