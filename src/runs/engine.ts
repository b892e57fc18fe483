import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { createContext, type CallContext } from '../context.js'
import { toGatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import {
  LeaseLostError,
  type ClaimedRun,
  type RunError,
  type RunRecord,
  type RunStore,
} from '../store/runs.js'
import { TENANT_ATTR, type Telemetry } from '../telemetry/tracing.js'
import type { AgentCatalog } from './agents.js'
import { DrainSignal, InterruptSignal, NonDeterminismError, RunContext, type RunHost } from './context.js'

export interface EngineOptions {
  store: RunStore
  catalog: AgentCatalog
  logger: Logger
  telemetry?: Telemetry
  host: Omit<RunHost, 'owner' | 'store' | 'draining' | 'published'>
  /** New events exist for a run (wakes its streams). */
  published(runId: string): void
  /** Runs given back by a draining process (another process may claim them now). */
  released?(runIds: string[]): void
  /** A run reached a terminal status (webhooks, audit). */
  onTerminal?(run: RunRecord): void
  /** Runs executing at once in this process. */
  concurrency: number
  /** Lease length; heartbeats renew it every third of it. */
  leaseMs: number
  /** How often to look for runs queued by other processes or left by dead ones. */
  pollMs: number
}

type AbortReason = 'cancel' | 'drain' | 'lost'

interface Execution {
  run: ClaimedRun
  ac: AbortController
  reason?: AbortReason
  cancelMessage?: string
  done: Promise<void>
}

/**
 * The reason a run's signal aborts with. Agents that hold remote work (a2a) read `why`: on
 * 'drain' or 'lost' the run continues elsewhere, so remote work must not be cancelled.
 */
export class AbortedRun extends Error {
  constructor(readonly why: AbortReason) {
    super(`run aborted (${why})`)
    this.name = 'AbortedRun'
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error)
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
  })
}

/** Engines alive in this process (tests and embedders may run several gateways in one process). */
const LIVE_OWNERS = new Set<string>()

/**
 * Lease owners on this host whose process is gone (SIGKILL, crash): their runs are taken over at
 * once. An owner with this process's pid that no live engine here holds is a previous
 * incarnation with the same pid (a container restarted as PID 1): dead too.
 */
function deadLocalOwners(owners: readonly string[], self: string): string[] {
  const host = hostname()
  const dead: string[] = []
  for (const o of owners) {
    if (o === self) continue
    const [h, pid] = o.split(':')
    if (h !== host || !pid) continue
    if (Number(pid) === process.pid) {
      if (!LIVE_OWNERS.has(o)) dead.push(o)
      continue
    }
    try {
      process.kill(Number(pid), 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') dead.push(o)
    }
  }
  return dead
}

/**
 * The worker half of durable runs: claims runs under a lease, executes the agent with a journaled
 * RunContext, renews leases, honours cancel requests, and drains on shutdown (no new claims;
 * running agents stop at their next step boundary; leases are released for another process).
 */
export class RunEngine {
  readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  private readonly active = new Map<string, Execution>()
  private draining = false
  private stopped = false
  private claiming = false
  private again = false
  /** Look for dead owners on the next claim (start-up and poll ticks, not every in-process wake). */
  private scanDead = true
  /** The last claim filled every free slot: runs may be waiting for one. */
  private saturated = false
  private pollTimer?: NodeJS.Timeout
  private beatTimer?: NodeJS.Timeout
  private readonly host: RunHost

  constructor(private readonly opts: EngineOptions) {
    LIVE_OWNERS.add(this.owner)
    this.host = {
      ...opts.host,
      owner: this.owner,
      store: opts.store,
      draining: () => this.draining,
      published: (id) => opts.published(id),
    }
  }

  start(): void {
    this.pollTimer = setInterval(() => {
      this.scanDead = true
      this.wake()
    }, this.opts.pollMs)
    this.pollTimer.unref()
    this.beatTimer = setInterval(() => void this.heartbeat(), Math.max(50, Math.floor(this.opts.leaseMs / 3)))
    this.beatTimer.unref()
    this.wake()
  }

  /** Look for work now (a run was created or resumed, or a slot freed up). */
  wake(): void {
    if (this.draining || this.stopped) return
    if (this.claiming) {
      this.again = true
      return
    }
    this.claiming = true
    void this.claimLoop().finally(() => {
      this.claiming = false
    })
  }

  private async claimLoop(): Promise<void> {
    do {
      this.again = false
      const free = this.opts.concurrency - this.active.size
      if (free <= 0) this.saturated = true
      if (free <= 0 || this.draining) return
      try {
        const scan = this.scanDead
        this.scanDead = false
        const dead = scan ? deadLocalOwners(await this.opts.store.leaseOwners(), this.owner) : []
        const runs = await this.opts.store.claim(this.owner, Date.now(), this.opts.leaseMs, free, dead)
        for (const run of runs) this.launch(run)
        this.saturated = runs.length === free
        if (this.saturated) this.again = true
      } catch (err) {
        this.opts.logger.error({ err }, 'claiming runs failed')
        return
      }
    } while (this.again)
  }

  private launch(run: ClaimedRun): void {
    const ac = new AbortController()
    const exec: Execution = { run, ac, done: Promise.resolve() }
    this.active.set(run.id, exec)
    this.opts.published(run.id)
    exec.done = this.execute(exec).finally(() => {
      this.active.delete(run.id)
      this.opts.published(run.id)
      // Claim again only when something may be waiting: the next run on this thread, or runs
      // queued while every slot was taken (others arrive by wake-ups and the poll).
      if (run.threadId || this.saturated) this.wake()
    })
  }

  /** Aborts a run executing here (cancel requested through this process). */
  abortLocal(runId: string, reason: AbortReason, message?: string): void {
    const exec = this.active.get(runId)
    if (!exec || exec.ac.signal.aborted) return
    exec.reason = reason
    if (message) exec.cancelMessage = message
    exec.ac.abort(new AbortedRun(reason))
  }

  private async heartbeat(): Promise<void> {
    if (!this.active.size || this.stopped) return
    try {
      const { lost, cancel } = await this.opts.store.heartbeat(
        this.owner,
        [...this.active.keys()],
        Date.now(),
        this.opts.leaseMs,
      )
      for (const id of lost) this.abortLocal(id, 'lost')
      for (const id of cancel) this.abortLocal(id, 'cancel', 'cancelled by request')
    } catch (err) {
      this.opts.logger.error({ err }, 'run lease heartbeat failed')
    }
  }

  private agentContext(run: ClaimedRun, traceparent?: string): CallContext {
    return createContext({
      tenant: run.tenant,
      principal: {
        kind: 'agent',
        id: `agent:${run.agent}`,
        name: run.agent,
        onBehalfOf: run.caller.principal,
      },
      roles: run.caller.roles,
      scopes: run.caller.scopes,
      requestId: run.id,
      ...(traceparent ? { trace: { traceparent } } : {}),
    })
  }

  private async finish(
    run: ClaimedRun,
    status: 'succeeded' | 'failed' | 'cancelled',
    output?: unknown,
    error?: RunError,
  ) {
    const done = await this.opts.store.finish(this.owner, run.id, {
      status,
      ...(output !== undefined ? { output } : {}),
      ...(error ? { error } : {}),
    })
    this.opts.published(run.id)
    if (done) this.opts.onTerminal?.(done.run)
  }

  private async execute(exec: Execution): Promise<void> {
    const { run, ac } = exec
    const log = this.opts.logger.child({ run: run.id, agent: run.agent, tenant: run.tenant })
    const span = this.opts.telemetry?.tracer.startSpan(`run ${run.agent}`, {
      kind: SpanKind.INTERNAL,
      attributes: {
        [TENANT_ATTR]: run.tenant,
        'gatehouse.run': run.id,
        'gatehouse.agent': run.agent,
        'gatehouse.attempt': run.attempts,
      },
    })
    const traceparent = span ? this.opts.telemetry!.inject(span).traceparent : undefined
    let rctx: RunContext | undefined
    try {
      if (run.cancelRequested) {
        await this.finish(run, 'cancelled', undefined, { code: 'cancelled', message: run.cancelRequested })
        return
      }
      const agent = this.opts.catalog.get(run.tenant, run.agent)
      if (!agent) {
        await this.finish(run, 'failed', undefined, {
          code: 'not_found',
          message: `agent ${run.agent} no longer exists in tenant ${run.tenant}`,
        })
        return
      }
      const def = await agent.definition()
      const journal = await this.opts.store.journal(run.id)
      rctx = new RunContext(this.host, run, journal, this.agentContext(run, traceparent), ac.signal)
      // A cancelled or drained run stops waiting for an agent that ignores its signal.
      const output = await Promise.race([def.run(run.input, rctx), rejectOnAbort(ac.signal)])
      await rctx.flush()
      if (rctx.suspended) return
      let normalized: unknown
      try {
        normalized = output === undefined ? null : JSON.parse(JSON.stringify(output))
      } catch {
        await this.finish(run, 'failed', undefined, {
          code: 'bad_output',
          message: 'the agent returned a value that is not JSON',
        })
        return
      }
      await this.finish(run, 'succeeded', normalized)
    } catch (err) {
      await rctx?.flush().catch(() => undefined)
      if (err instanceof InterruptSignal || rctx?.suspended) return
      if (exec.reason === 'cancel') {
        await this.finish(run, 'cancelled', undefined, {
          code: 'cancelled',
          message: exec.cancelMessage ?? 'cancelled',
        })
        return
      }
      if (exec.reason === 'lost' || err instanceof LeaseLostError) {
        log.warn('run lease lost; another worker or a cancel took it over')
        return
      }
      if (exec.reason === 'drain' || err instanceof DrainSignal) {
        await this.opts.store.release(this.owner, [run.id])
        this.opts.released?.([run.id])
        return
      }
      const e: RunError =
        err instanceof NonDeterminismError
          ? { code: 'nondeterminism', message: err.message }
          : (() => {
              const ge = toGatewayError(err)
              return ge.code === 'internal'
                ? { code: 'agent_error', message: err instanceof Error ? err.message : String(err) }
                : { code: ge.code, message: ge.message }
            })()
      if (e.code === 'agent_error') log.warn({ err }, 'agent failed')
      span?.recordException(err instanceof Error ? err : new Error(String(err)))
      await this.finish(run, 'failed', undefined, e).catch((finishErr: unknown) => {
        if (!(finishErr instanceof LeaseLostError)) throw finishErr
      })
    } finally {
      span?.setStatus({ code: SpanStatusCode.OK })
      span?.end()
    }
  }

  /**
   * Stops claiming; running agents stop at their next journal boundary (the step in flight
   * finishes and is recorded); after `timeoutMs` the rest are aborted. Leases are released so
   * another process resumes the runs at once.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true
    clearInterval(this.pollTimer)
    const all = Promise.allSettled([...this.active.values()].map((e) => e.done))
    const timer = new Promise<void>((r) => setTimeout(r, timeoutMs).unref())
    await Promise.race([all, timer])
    for (const id of [...this.active.keys()]) this.abortLocal(id, 'drain')
    await Promise.race([all, new Promise<void>((r) => setTimeout(r, 1000).unref())])
    clearInterval(this.beatTimer)
    this.stopped = true
    LIVE_OWNERS.delete(this.owner)
    if (this.active.size) {
      const ids = [...this.active.keys()]
      await this.opts.store.release(this.owner, ids).then(
        () => this.opts.released?.(ids),
        () => undefined,
      )
    }
  }

  get running(): number {
    return this.active.size
  }
}
