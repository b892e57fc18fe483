import type { CallContext } from '../context.js'
import type { RunStatus } from './runs.js'

/**
 * What the A2A endpoint keeps beyond runs: push notification configs (with a per-config cursor
 * into the run's event log, so deliveries survive restarts and run on any process), the message
 * ids it has already turned into tasks (a re-sent message finds its task instead of starting
 * another), and the task listing (runs of one agent, newest update first). Tasks themselves are
 * runs: nothing about them is kept here.
 */

/** The protocol version a push config was created with; its deliveries use that version's body shape. */
export type PushWireVersion = '1.0' | '0.3'

export interface PushConfigRecord {
  tenant: string
  taskId: string
  id: string
  url: string
  /** `X-A2A-Notification-Token` value, sealed. */
  sealedToken?: string
  /** `Authorization` scheme (e.g. `Bearer`) and its credentials, sealed. */
  authScheme?: string
  sealedCredentials?: string
  wireVersion: PushWireVersion
  /** Events of the run up to this seq have been turned into deliveries. */
  notifiedSeq: number
  /** The A2A state the last delivery announced (to tell a change from a repeat). */
  lastState: string
  /** The run ended and its last event was handled: nothing more to deliver. */
  done: boolean
  createdAt: string
  updatedAt: string
}

export interface NewPushConfig {
  taskId: string
  id: string
  url: string
  sealedToken?: string
  authScheme?: string
  sealedCredentials?: string
  wireVersion: PushWireVersion
  notifiedSeq: number
  lastState: string
}

/** One alternative of a task-state filter: a run status, optionally narrowed by error code or interrupt type. */
export interface RunStateMatch {
  status: RunStatus
  /** `error.code` must be one of these (failed runs). */
  errorCodeIn?: readonly string[]
  /** `error.code` must not be one of these (a missing error counts as not in the list). */
  errorCodeNotIn?: readonly string[]
  /** `interrupt.type` must be one of these (interrupted runs). */
  interruptTypeIn?: readonly string[]
  interruptTypeNotIn?: readonly string[]
}

export interface TaskQuery {
  agent: string
  threadId?: string
  /** Any of these (OR); absent: every state. */
  states?: readonly RunStateMatch[]
  /** Only runs updated after this ISO timestamp. */
  updatedAfter?: string
  /** 1–100. */
  pageSize: number
  /** Opaque cursor from a previous page. */
  pageToken?: string
}

export interface A2aStore {
  /** Creates or replaces the config `(taskId, id)` in the caller's tenant. The caller checked the task. */
  putPushConfig(ctx: CallContext, config: NewPushConfig): Promise<PushConfigRecord>
  getPushConfig(ctx: CallContext, taskId: string, id: string): Promise<PushConfigRecord | undefined>
  listPushConfigs(ctx: CallContext, taskId: string): Promise<PushConfigRecord[]>
  /** False when there was no such config in the caller's tenant. */
  deletePushConfig(ctx: CallContext, taskId: string, id: string): Promise<boolean>

  /**
   * Dispatcher (the gateway itself, every tenant): configs not done whose run has events after
   * their cursor, or whose run is gone; oldest update first.
   */
  pushBacklog(limit: number): Promise<(PushConfigRecord & { runExists: boolean })[]>
  /** Dispatcher: one config, for the headers of a delivery. */
  pushConfigOf(tenant: string, taskId: string, id: string): Promise<PushConfigRecord | undefined>
  /** Dispatcher: moves the cursor forward (never back) and records the state; `done` ends the config's deliveries. */
  advancePush(
    tenant: string,
    taskId: string,
    id: string,
    seq: number,
    lastState: string,
    done: boolean,
  ): Promise<void>

  /** The task a message id already started (or answered) for this owner, if any. */
  taskOfMessage(ctx: CallContext, messageId: string): Promise<string | undefined>
  /** Remembers that a message id went to a task (first writer wins). */
  rememberMessage(ctx: CallContext, messageId: string, taskId: string): Promise<void>

  /**
   * Run ids of one agent the caller may see (own runs; the tenant's for admins and auditors),
   * most recently updated first, with the count of all matches.
   */
  listTaskIds(ctx: CallContext, query: TaskQuery): Promise<{ ids: string[]; next?: string; total: number }>
}
