import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { LocalNotifier, NOTIFY_CHANNELS, type Notifier, type NotifyChannel } from '../../runs/notifier.js'

/** PostgreSQL's NOTIFY payload limit (bytes, exclusive). */
const MAX_PAYLOAD_BYTES = 8000

export interface PgNotifierOptions {
  url: string
  /** Channels are namespaced by this (the store's schema), so deployments sharing a database do not hear each other. */
  namespace?: string
  /** Connection errors (the LISTEN connection reconnects by itself). */
  onError?: (err: Error) => void
  /** First reconnect delay; doubles up to 5 s. */
  retryMs?: number
}

/**
 * LISTEN/NOTIFY between replicas on one dedicated connection (it both listens and notifies; the
 * pool is never held). Publishes dispatch locally at once and are sent to PostgreSQL coalesced
 * (one `pg_notify` round trip per event-loop turn, duplicates dropped); a replica ignores its own
 * notifications when they come back. While the connection is down, notifications are lost:
 * polling (runPollMs) and heartbeats (lease/3) are the fallback, so nothing is missed for long.
 */
export class PgNotifier implements Notifier {
  private readonly local = new LocalNotifier()
  private readonly self = randomUUID().slice(0, 12)
  private readonly prefix: string
  private client?: pg.Client
  private ready = false
  private closed = false
  private retry: number
  private retryTimer?: NodeJS.Timeout
  private pending = new Map<NotifyChannel, Set<string>>()
  private flushing = false

  constructor(private readonly o: PgNotifierOptions) {
    this.prefix = `gatehouse_${o.namespace ? `${o.namespace}_` : ''}`
    this.retry = o.retryMs ?? 250
  }

  /** Connects and LISTENs; on failure keeps retrying in the background (and resolves). */
  async start(): Promise<void> {
    await this.connect()
  }

  /** True while the LISTEN connection is up. */
  get listening(): boolean {
    return this.ready
  }

  publish(channel: NotifyChannel, runId: string): void {
    this.local.dispatch(channel, runId)
    if (this.closed) return
    let set = this.pending.get(channel)
    if (!set) this.pending.set(channel, (set = new Set()))
    set.add(runId)
    if (!this.flushing) {
      this.flushing = true
      setImmediate(() => void this.flush())
    }
  }

  subscribe(channel: NotifyChannel, handler: (runId: string) => void): void {
    this.local.subscribe(channel, handler)
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    await this.flush()
    const c = this.client
    this.client = undefined
    this.ready = false
    await c?.end().catch(() => {})
  }

  private async flush(): Promise<void> {
    this.flushing = false
    const pending = this.pending
    this.pending = new Map()
    if (!pending.size) return
    const client = this.client
    if (!client || !this.ready) return
    const channels: string[] = []
    const payloads: string[] = []
    for (const [ch, ids] of pending)
      for (const id of ids) {
        const payload = `${this.self} ${id}`
        // PostgreSQL refuses a payload of 8000 bytes or more, and with it the whole statement:
        // one oversized signal must not cost the others.
        if (Buffer.byteLength(payload) >= MAX_PAYLOAD_BYTES) {
          this.o.onError?.(new Error(`notification on ${ch} over ${MAX_PAYLOAD_BYTES} bytes dropped`))
          continue
        }
        channels.push(this.prefix + ch)
        payloads.push(payload)
      }
    if (!payloads.length) return
    try {
      await client.query('SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)', [
        channels,
        payloads,
      ])
    } catch (err) {
      this.o.onError?.(err as Error)
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) return
    const client = new pg.Client({ connectionString: this.o.url, application_name: 'gatehouse-listen' })
    let failed = false
    const fail = (err?: Error) => {
      if (failed) return
      failed = true
      if (err) this.o.onError?.(err)
      if (this.client === client) {
        this.client = undefined
        this.ready = false
      }
      void client.end().catch(() => {})
      this.scheduleReconnect()
    }
    client.on('error', (err) => fail(err))
    client.on('end', () => fail())
    client.on('notification', (msg) => {
      const ch = msg.channel.startsWith(this.prefix)
        ? (msg.channel.slice(this.prefix.length) as NotifyChannel)
        : undefined
      const payload = msg.payload ?? ''
      const sp = payload.indexOf(' ')
      if (!ch || sp < 0 || payload.slice(0, sp) === this.self) return
      this.local.dispatch(ch, payload.slice(sp + 1))
    })
    try {
      await client.connect()
      for (const ch of NOTIFY_CHANNELS) await client.query(`LISTEN ${pg.escapeIdentifier(this.prefix + ch)}`)
      if (failed || this.closed) {
        await client.end().catch(() => {})
        return
      }
      this.client = client
      this.ready = true
      this.retry = this.o.retryMs ?? 250
      // Anything may have happened while no notification could arrive: have everyone look again.
      this.local.dispatch('wake', '')
    } catch (err) {
      fail(err as Error)
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return
    const delay = this.retry
    this.retry = Math.min(this.retry * 2, 5000)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      void this.connect()
    }, delay)
    this.retryTimer.unref()
  }
}
