/**
 * A2A push notifications. Configs live in the store (token and credentials sealed) with a cursor
 * into the run's event log. A dispatcher, on every gateway process, turns the events after each
 * cursor into deliveries of the durable webhook outbox (retried with backoff, SSRF-guarded) and
 * moves the cursor; the delivery ids are derived from task, event and config, so two processes
 * (or a crash between enqueue and cursor move) enqueue each notification once. The config's
 * token and authentication are added when each attempt is made (`WebhookSender` header source),
 * so a deleted config stops its pending deliveries.
 */
import { randomUUID } from 'node:crypto'
import { StreamResponse, Task } from '@a2a-js/sdk'
import { V03PushNotificationSerializer } from '@a2a-js/sdk/compat/v0_3/server'
import { systemContext, type CallContext } from '../context.js'
import type { Logger } from '../log.js'
import type { WebhookSender } from '../runs/webhooks.js'
import type { PushConfigRecord, PushWireVersion } from '../store/a2a.js'
import type { ClaimedWebhookDelivery, Store } from '../store/types.js'
import type { MasterKey } from '../vault/master-key.js'
import { seal, unseal } from '../vault/seal.js'
import { parseState, TaskFold, type Derived } from './convert.js'

export const PUSH_SECRET_AAD = 'gatehouse/a2a-push'
/** Outbox delivery ids of push notifications: `a2ap_{taskId}_{seq}_{n}_{base64url(configId)}`. */
const DELIVERY_PREFIX = 'a2ap_'
const DELIVERY_RE = /^a2ap_([0-9a-fA-F-]{36})_(\d+)_(\d+)_([A-Za-z0-9_-]+)$/
/** Most configs one task may have. */
export const MAX_CONFIGS_PER_TASK = 10
const EVENTS_PER_TICK = 1000

/** What a client asks for (A2A 1.0 TaskPushNotificationConfig, 0.3 converted by the SDK). */
export interface PushConfigInput {
  id?: string
  url: string
  token?: string
  authentication?: { scheme: string; credentials: string }
}

/** The config as A2A shows it: never the credentials. */
export function pushConfigView(c: PushConfigRecord, master: readonly MasterKey[]): Record<string, unknown> {
  let token = ''
  if (c.sealedToken) {
    try {
      token = unseal(master, c.sealedToken, PUSH_SECRET_AAD)
    } catch {
      token = ''
    }
  }
  return {
    taskId: c.taskId,
    id: c.id,
    url: c.url,
    ...(token ? { token } : {}),
    ...(c.authScheme ? { authentication: { scheme: c.authScheme, credentials: '' } } : {}),
  }
}

/** Control characters (a header value must not carry them). */
const CONTROL = {
  test: (s: string): boolean => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f),
}
const SCHEME = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,63}$/

/** Checks a config (throws a message for the client) and seals its secrets. */
export function preparePushConfig(
  input: PushConfigInput,
  checkUrl: (url: string) => void,
  master: MasterKey,
): { id: string; url: string; sealedToken?: string; authScheme?: string; sealedCredentials?: string } {
  if (!input.url) throw new PushConfigError('url is required')
  checkUrl(input.url)
  const id = input.id || randomUUID()
  if (id.length > 128 || CONTROL.test(id))
    throw new PushConfigError('id must be at most 128 characters without control characters')
  const out: ReturnType<typeof preparePushConfig> = { id, url: input.url }
  if (input.token) {
    if (input.token.length > 4096 || CONTROL.test(input.token))
      throw new PushConfigError('token must be at most 4096 characters without control characters')
    out.sealedToken = seal(master, input.token, PUSH_SECRET_AAD)
  }
  const auth = input.authentication
  if (auth && (auth.scheme || auth.credentials)) {
    if (!SCHEME.test(auth.scheme))
      throw new PushConfigError('authentication.scheme must be an HTTP auth scheme such as Bearer or Basic')
    if (!auth.credentials || auth.credentials.length > 4096 || CONTROL.test(auth.credentials))
      throw new PushConfigError(
        'authentication.credentials are required: at most 4096 characters without control characters',
      )
    out.authScheme = auth.scheme
    out.sealedCredentials = seal(master, auth.credentials, PUSH_SECRET_AAD)
  }
  return out
}

export class PushConfigError extends Error {}

export interface PushDispatcherOptions {
  store: Store
  webhooks: WebhookSender
  masterKeys: readonly MasterKey[]
  logger: Logger
  /** How often the backlog is read (ms); default 250. */
  pollMs?: number
}

/** Delivers push notifications from the run event log through the webhook outbox. */
export class PushDispatcher {
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  private closed = false
  private readonly v03 = new V03PushNotificationSerializer()

  constructor(private readonly o: PushDispatcherOptions) {
    o.webhooks.addHeaderSource(DELIVERY_PREFIX, (d) => this.headersFor(d))
  }

  start(): void {
    if (this.timer || this.closed) return
    this.timer = setInterval(() => this.kick(), this.o.pollMs ?? 250)
    this.timer.unref()
  }

  /** Runs a round now (or right after the current one). */
  kick(): void {
    if (this.closed || this.ticking) return
    this.ticking = this.tick()
      .catch((err: unknown) => this.o.logger.error({ err }, 'a2a push dispatch failed'))
      .finally(() => {
        this.ticking = undefined
      })
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.ticking
  }

  private async tick(): Promise<void> {
    const backlog = await this.o.store.a2a.pushBacklog(100)
    for (const cfg of backlog) {
      if (this.closed) return
      if (!cfg.runExists) {
        // The run was deleted (its thread, or a rollback): nothing will ever happen to it again.
        await this.o.store.a2a.advancePush(
          cfg.tenant,
          cfg.taskId,
          cfg.id,
          cfg.notifiedSeq,
          cfg.lastState,
          true,
        )
        continue
      }
      try {
        await this.dispatch(cfg)
      } catch (err) {
        this.o.logger.error({ err, task: cfg.taskId, config: cfg.id }, 'a2a push notification failed')
      }
    }
  }

  /** Turns the events after one config's cursor into deliveries, then moves the cursor. */
  private async dispatch(cfg: PushConfigRecord): Promise<void> {
    const ctx = systemContext(cfg.tenant)
    const runs = this.o.store.runs
    const run = await runs.get(ctx, cfg.taskId)
    if (!run) return
    const fold = new TaskFold(run)
    // A 1.0 body is the event itself: the fold only needs the state the cursor left it in. A 0.3
    // body is the whole task, so its fold replays the log from the start.
    let from = 0
    if (cfg.wireVersion === '1.0') {
      fold.seed(parseState(cfg.lastState) ?? 'submitted', cfg.notifiedSeq)
      from = cfg.notifiedSeq
    }
    let answers: unknown[] | undefined
    let read = 0
    let after = from
    while (read < EVENTS_PER_TICK) {
      const events = await runs.events(ctx, cfg.taskId, after, Math.min(1000, EVENTS_PER_TICK - read))
      if (!events.length) break
      read += events.length
      for (const e of events) {
        after = e.seq
        const derived = fold.apply(e)
        if (e.seq <= cfg.notifiedSeq) continue
        let n = 0
        for (const d of derived) {
          if (d.transient) continue
          if (cfg.wireVersion === '0.3')
            answers ??= (await runs.journal(cfg.taskId))
              .filter((j) => j.kind === 'interrupt' && j.status === 'done')
              .map((j) => j.result)
          await this.enqueue(ctx, cfg, d, n++, fold, answers)
        }
      }
      if (events.length < 1000) break
    }
    if (after > cfg.notifiedSeq || fold.ended)
      await this.o.store.a2a.advancePush(cfg.tenant, cfg.taskId, cfg.id, after, fold.state, fold.ended)
  }

  private async enqueue(
    ctx: CallContext,
    cfg: PushConfigRecord,
    d: Derived,
    n: number,
    fold: TaskFold,
    answers: unknown[] | undefined,
  ): Promise<void> {
    const id = `${DELIVERY_PREFIX}${cfg.taskId}_${d.seq}_${n}_${Buffer.from(cfg.id).toString('base64url')}`
    const payload =
      cfg.wireVersion === '0.3'
        ? JSON.parse(
            this.v03.serialize(
              StreamResponse.fromJSON(d.event),
              Task.fromJSON(fold.task(answers ? { answers } : {})),
            ).body,
          )
        : d.event
    try {
      await this.o.webhooks.enqueue(ctx, { id, url: cfg.url, runId: cfg.taskId, payload })
    } catch (err) {
      // A target the guard refuses now (the policy changed) or an id clash: skip this one.
      this.o.logger.warn({ err, task: cfg.taskId, config: cfg.id }, 'a2a push notification not enqueued')
    }
  }

  /** The headers of one delivery attempt, from its config as it is now; null when it is gone. */
  private async headersFor(d: ClaimedWebhookDelivery): Promise<Record<string, string> | null> {
    const m = DELIVERY_RE.exec(d.id)
    if (!m) return null
    const configId = Buffer.from(m[4]!, 'base64url').toString('utf8')
    const cfg = await this.o.store.a2a.pushConfigOf(d.tenant, m[1]!, configId)
    if (!cfg || cfg.url !== d.url) return null
    const headers: Record<string, string> = {
      'content-type': contentTypeOf(cfg.wireVersion),
    }
    if (cfg.sealedToken)
      headers['x-a2a-notification-token'] = unseal(this.o.masterKeys, cfg.sealedToken, PUSH_SECRET_AAD)
    if (cfg.authScheme && cfg.sealedCredentials)
      headers.authorization = `${cfg.authScheme} ${unseal(this.o.masterKeys, cfg.sealedCredentials, PUSH_SECRET_AAD)}`
    return headers
  }
}

function contentTypeOf(v: PushWireVersion): string {
  return v === '1.0' ? 'application/a2a+json' : 'application/json'
}
