import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import {
  TERMINAL_STATUSES,
  type MultitaskStrategy,
  type RunEvent,
  type RunQuery,
  type RunRecord,
  type RunStore,
  type ThreadRecord,
} from '../store/runs.js'
import type { AuditWriter } from '../telemetry/audit.js'
import type { AgentCatalog } from './agents.js'
import type { RunEngine } from './engine.js'
import type { EventHub } from './hub.js'
import type { Notifier } from './notifier.js'

/** Completion webhooks: the URL is checked when the run is created, delivery happens at the end. */
export interface RunWebhooks {
  /** Throws bad_request for a URL the SSRF guard refuses. */
  check(url: string): Promise<void>
  /** Seals a per-run signing secret for storage. */
  sealSecret(secret: string): string
}

export interface NewRunRequest {
  agent: string
  input: unknown
  threadId?: string
  multitaskStrategy?: MultitaskStrategy
  webhook?: { url: string; secret?: string }
}

export interface RunServiceOptions {
  store: RunStore
  catalog: AgentCatalog
  engine: RunEngine
  hub: EventHub
  /** Tells every replica (this one included) about new events, claimable runs and cancel requests. */
  notifier: Notifier
  audit: AuditWriter
  logger: Logger
  webhooks?: RunWebhooks
  /** A run ended without its worker (cancelled while queued or interrupted, displaced by a newer run). */
  onTerminal?(run: RunRecord): void
  /**
   * Policy: a resume of a run paused for approval is a decision (src/policy/approvals.ts); returns
   * the run when it handled the resume, undefined to resume as usual.
   */
  onResume?(ctx: CallContext, run: RunRecord, value: unknown): Promise<RunRecord | undefined>
  /** Policy: may this caller start a run of this agent now (deny, budgets, rate limits)? Throws if not. */
  admit?(ctx: CallContext, agent: string): Promise<void>
  /** Comment line written to idle event streams this often. */
  heartbeatMs: number
  /** How often a stream re-reads the store for events written by another process. */
  pollMs: number
}

/** The public JSON shape of a run (SPEC Run API). */
export function runView(r: RunRecord): Record<string, unknown> {
  return {
    id: r.id,
    status: r.status,
    agent: r.agent,
    thread_id: r.threadId ?? null,
    input: r.input,
    ...(r.output !== undefined ? { output: r.output } : {}),
    ...(r.error ? { error: r.error } : {}),
    ...(r.interrupt !== undefined ? { interrupt: r.interrupt } : {}),
    multitask_strategy: r.multitaskStrategy,
    ...(r.webhook ? { webhook: r.webhook.url } : {}),
    ...(r.usage ? { usage: r.usage } : {}),
    attempts: r.attempts,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  }
}

export function threadView(t: ThreadRecord): Record<string, unknown> {
  return {
    thread_id: t.id,
    status: t.status,
    metadata: t.metadata,
    values: t.state,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  }
}

/** The run API behind every ingress (REST, MCP, A2A): validation, multitask, cancel, resume, streams. */
export class RunService {
  /** Aborted on shutdown: open event streams end (clients reconnect with Last-Event-ID). */
  private readonly closing = new AbortController()

  constructor(private readonly o: RunServiceOptions) {}

  close(): void {
    this.closing.abort()
  }

  async create(ctx: CallContext, req: NewRunRequest): Promise<RunRecord> {
    const agent = this.o.catalog.get(ctx.tenant, req.agent)
    if (!agent) throw new GatewayError('not_found', `unknown agent ${req.agent}`)
    if (this.o.admit) await this.o.admit(ctx, req.agent)
    const input = req.input ?? {}
    let problems: string[] | undefined
    try {
      problems = await agent.validate(input)
    } catch (err) {
      throw new GatewayError('unavailable', `agent ${req.agent} cannot be loaded: ${(err as Error).message}`)
    }
    if (problems)
      throw new GatewayError(
        'invalid_params',
        `input does not match agent ${req.agent}'s schema: ${problems.join('; ')}`,
        {
          details: problems,
        },
      )
    let webhook: { url: string; secret?: string } | undefined
    if (req.webhook) {
      if (!this.o.webhooks)
        throw new GatewayError('not_supported', 'run webhooks are not configured on this gateway')
      await this.o.webhooks.check(req.webhook.url)
      webhook = {
        url: req.webhook.url,
        ...(req.webhook.secret ? { secret: this.o.webhooks.sealSecret(req.webhook.secret) } : {}),
      }
    }
    const { run, displaced } = await this.o.store.create(ctx, {
      id: randomUUID(),
      agent: req.agent,
      ...(req.threadId ? { threadId: req.threadId } : {}),
      input,
      multitaskStrategy: req.multitaskStrategy ?? 'enqueue',
      ...(webhook ? { webhook } : {}),
      caller: { principal: ctx.principal, roles: [...ctx.roles], scopes: [...ctx.scopes] },
    })
    for (const id of displaced) {
      this.o.engine.abortLocal(id, 'cancel', `displaced by run ${run.id}`)
      this.o.notifier.publish('cancel', id)
      this.o.notifier.publish('events', id)
      if (req.multitaskStrategy === 'interrupt') {
        const gone = await this.o.store.get(ctx, id)
        if (gone) this.o.onTerminal?.(gone)
      }
    }
    this.audit(ctx, 'run.create', `${req.agent}/${run.id}`)
    this.o.notifier.publish('wake', run.id)
    return run
  }

  async get(ctx: CallContext, id: string): Promise<RunRecord> {
    const run = await this.o.store.get(ctx, id)
    if (!run) throw new GatewayError('not_found', `run ${id} not found`)
    return run
  }

  list(ctx: CallContext, query: RunQuery): Promise<{ items: RunRecord[]; next?: string }> {
    return this.o.store.list(ctx, query)
  }

  async cancel(ctx: CallContext, id: string, reason = 'cancelled by request'): Promise<RunRecord> {
    const run = await this.o.store.requestCancel(ctx, id, reason)
    if (!run) throw new GatewayError('not_found', `run ${id} not found`)
    this.o.engine.abortLocal(id, 'cancel', reason)
    this.o.notifier.publish('cancel', id)
    this.o.notifier.publish('events', id)
    this.audit(ctx, 'run.cancel', `${run.agent}/${id}`)
    if (run.status === 'cancelled') this.o.onTerminal?.(run)
    return run
  }

  async resume(ctx: CallContext, id: string, value: unknown): Promise<RunRecord> {
    if (this.o.onResume) {
      const handled = await this.o.onResume(ctx, await this.get(ctx, id), value)
      if (handled) return handled
    }
    const run = await this.o.store.resume(ctx, id, value)
    if (!run) throw new GatewayError('not_found', `run ${id} not found`)
    this.o.notifier.publish('events', id)
    this.audit(ctx, 'run.resume', `${run.agent}/${id}`)
    this.o.notifier.publish('wake', id)
    return run
  }

  /** Waits until the run is terminal or interrupted (or `timeoutMs` passes); returns its latest record. */
  async wait(ctx: CallContext, id: string, timeoutMs: number, signal?: AbortSignal): Promise<RunRecord> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const run = await this.get(ctx, id)
      if (TERMINAL_STATUSES.has(run.status) || run.status === 'interrupted') return run
      const left = deadline - Date.now()
      if (left <= 0 || signal?.aborted) return run
      await this.o.hub.wait(id, Math.min(left, this.o.pollMs), signal)
    }
  }

  /**
   * Follows a run's events from `afterSeq`: calls `onEvent` for each, in order, until the terminal
   * event (returns true) or until `signal` aborts (returns false).
   */
  async follow(
    ctx: CallContext,
    id: string,
    afterSeq: number,
    onEvent: (e: RunEvent) => void | Promise<void>,
    signal: AbortSignal,
    onIdle?: () => void,
  ): Promise<boolean> {
    let last = afterSeq
    let idleSince = Date.now()
    while (!signal.aborted) {
      const events = await this.o.store.events(ctx, id, last)
      for (const e of events) {
        await onEvent(e)
        last = e.seq
        if (e.type === 'end') return true
      }
      if (events.length) idleSince = Date.now()
      else if (onIdle && Date.now() - idleSince >= this.o.heartbeatMs) {
        onIdle()
        idleSince = Date.now()
      }
      if (events.length < 1000) await this.o.hub.wait(id, Math.min(this.o.pollMs, this.o.heartbeatMs), signal)
    }
    return false
  }

  /** Serves `GET /v1/runs/{id}/events` as Server-Sent Events. */
  async stream(ctx: CallContext, id: string, afterSeq: number, res: ServerResponse): Promise<void> {
    await this.get(ctx, id) // 404 before any byte of the stream
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    })
    res.flushHeaders()
    const ac = new AbortController()
    res.on('close', () => ac.abort())
    const stop = () => ac.abort()
    this.closing.signal.addEventListener('abort', stop, { once: true })
    try {
      await this.follow(
        ctx,
        id,
        afterSeq,
        (e) => {
          res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`)
        },
        ac.signal,
        () => res.write(': keep-alive\n\n'),
      )
    } catch (err) {
      // The run was rolled back (deleted) while streaming: say so, then end.
      if (err instanceof GatewayError && err.code === 'not_found')
        res.write(
          `event: end\ndata: ${JSON.stringify({ status: 'cancelled', error: { code: 'rolled_back', message: `run ${id} was rolled back` } })}\n\n`,
        )
      else this.o.logger.error({ err, run: id }, 'run event stream failed')
    } finally {
      this.closing.signal.removeEventListener('abort', stop)
    }
    res.end()
  }

  private audit(ctx: CallContext, action: string, target: string): void {
    void this.o.audit.action(ctx, action, target)
  }
}
