/**
 * Cross-process wake-ups for runs. The store stays the source of truth: a notification only says
 * "look again now" (instead of at the next poll). Payloads are run ids.
 *
 * - `events`: new events were appended to a run (streams and waiters look again).
 * - `wake`: a run became claimable (created, resumed, released by a draining process).
 * - `cancel`: a cancel was requested for a run (the process executing it aborts it).
 * - `mcp`: 2025-era MCP sessions shared by replicas (src/mcp/sessions.ts); the payload is a JSON signal, not a run id.
 *
 * SQLite (one process): `LocalNotifier`, handlers run in-process. PostgreSQL (replicas):
 * `PgNotifier` (src/store/pg/notify.ts), LISTEN/NOTIFY on a dedicated connection; a lost
 * notification costs at most one poll interval (runPollMs) or one heartbeat (cancel).
 */
export type NotifyChannel = 'events' | 'wake' | 'cancel' | 'mcp'

export const NOTIFY_CHANNELS: readonly NotifyChannel[] = ['events', 'wake', 'cancel', 'mcp']

export interface Notifier {
  /** Tells every process (this one included, synchronously) about `runId`. Never throws. */
  publish(channel: NotifyChannel, runId: string): void
  /** Registers a handler for one channel; handlers must not throw. */
  subscribe(channel: NotifyChannel, handler: (runId: string) => void): void
  close(): Promise<void>
}

/** The in-process dispatch both implementations share. */
export class LocalNotifier implements Notifier {
  private readonly handlers = new Map<NotifyChannel, Array<(runId: string) => void>>()

  publish(channel: NotifyChannel, runId: string): void {
    this.dispatch(channel, runId)
  }

  subscribe(channel: NotifyChannel, handler: (runId: string) => void): void {
    let list = this.handlers.get(channel)
    if (!list) this.handlers.set(channel, (list = []))
    list.push(handler)
  }

  /** Runs the local handlers of `channel` (also what a remote notification ends in). */
  dispatch(channel: NotifyChannel, runId: string): void {
    for (const h of this.handlers.get(channel) ?? []) h(runId)
  }

  async close(): Promise<void> {}
}
