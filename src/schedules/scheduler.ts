import type { Cron } from 'croner'
import { createContext, systemContext, type CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { compileCron, type ScheduleSpec } from '../manifests/schema.js'
import type { RunService } from '../runs/service.js'
import type { RunRecord } from '../store/runs.js'
import { SYSTEM_TENANT, type TickKey, type TickRecord } from '../store/schedules.js'
import type { ResourceRecord, Store } from '../store/types.js'
import type { AuditWriter } from '../telemetry/audit.js'
import { nextAfter, planTicks } from './plan.js'

/** A periodic job of the gateway itself that must run once per interval across replicas. */
export interface SystemJob {
  /** Unique among jobs; the tick ledger's schedule name under tenant `_system`. */
  name: string
  /** croner syntax, evaluated in UTC. */
  cron: string
  run(): Promise<void>
}

export interface SchedulerOptions {
  store: Store
  runs: RunService
  audit: AuditWriter
  logger: Logger
  /** This process's claimer id (unique per process). */
  owner: string
  jobs?: SystemJob[]
  /** How often Schedule manifests are re-read (other replicas' applies) and stale claims recovered. */
  refreshMs?: number
  /** A tick whose timer fired up to this late still runs; older ones count as missed. */
  graceMs?: number
  /** A tick claimed this long ago without an outcome is taken over (its claimer stopped). */
  staleMs?: number
  now?: () => number
}

interface Entry {
  tenant: string
  name: string
  generation: number
  spec: ScheduleSpec
  cron: Cron
  /** The first occurrence not handled yet; undefined while resuming or when it never fires again. */
  next?: number
  /** Resume from the ledger's last tick (first load in this process): the missed policy applies. */
  resuming: boolean
  job?: SystemJob
}

/** The thread every run of a schedule goes on: one at a time, shared state, listed by the Run API. */
export const scheduleThread = (name: string): string => `schedule:${name}`

/** Who a schedule's runs act as: a system principal of the tenant, named after the schedule. */
export function scheduleContext(tenant: string, name: string, requestId?: string): CallContext {
  return createContext({
    tenant,
    principal: { kind: 'system', id: `schedule:${name}`, name },
    roles: ['member'],
    ...(requestId ? { requestId } : {}),
  })
}

const key = (tenant: string, name: string) => `${tenant}/${name}`

/**
 * Starts agent runs from Schedule manifests, exactly once per tick across every process on one
 * database: each due tick is claimed in the store's tick ledger (a unique key), and only the
 * claimer starts the run. Also runs the gateway's cluster-wide system jobs the same way.
 */
export class Scheduler {
  private readonly entries = new Map<string, Entry>()
  private timer?: NodeJS.Timeout
  private refresher?: NodeJS.Timeout
  private readonly inFlight = new Set<Promise<void>>()
  private stopped = true
  private readonly now: () => number
  private readonly graceMs: number
  private readonly staleMs: number
  private readonly refreshMs: number

  constructor(private readonly o: SchedulerOptions) {
    this.now = o.now ?? Date.now
    this.graceMs = o.graceMs ?? 2_000
    this.staleMs = o.staleMs ?? 30_000
    this.refreshMs = o.refreshMs ?? 5_000
    for (const job of o.jobs ?? []) {
      const cron = compileCron(job.cron, 'UTC')
      this.entries.set(key(SYSTEM_TENANT, job.name), {
        tenant: SYSTEM_TENANT,
        name: job.name,
        generation: 0,
        spec: {
          cron: job.cron,
          timezone: 'UTC',
          agent: job.name,
          input: {},
          enabled: true,
          overlap: 'skip',
          missed: 'skip',
        },
        cron,
        resuming: true,
        job,
      })
    }
  }

  /** Applied resources (start-up, after every apply, and every refresh): Schedule manifests become entries. */
  load(resources: readonly ResourceRecord[]): void {
    const seen = new Set<string>()
    for (const r of resources) {
      if (r.kind !== 'Schedule') continue
      const k = key(r.tenant, r.name)
      seen.add(k)
      const had = this.entries.get(k)
      if (had && had.generation === r.generation) continue
      const spec = r.spec as ScheduleSpec
      let cron: Cron
      try {
        cron = compileCron(spec.cron, spec.timezone)
      } catch (err) {
        this.o.logger.error({ err, schedule: k }, 'schedule has an invalid cron expression; ignored')
        continue
      }
      // A changed schedule starts from now; one new to this process resumes from the ledger.
      const entry: Entry = {
        tenant: r.tenant,
        name: r.name,
        generation: r.generation,
        spec,
        cron,
        resuming: !had,
      }
      if (had) entry.next = nextAfter(cron, this.now())
      this.entries.set(k, entry)
    }
    for (const [k, e] of this.entries) if (!e.job && !seen.has(k)) this.entries.delete(k)
    if (!this.stopped) this.arm(0)
  }

  start(): void {
    this.stopped = false
    this.arm(0)
    this.refresher = setInterval(() => void this.refresh(), this.refreshMs)
    this.refresher.unref()
  }

  /** Stops ticking (drain): no new claims; waits for ticks in flight to record their outcome. */
  async close(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    clearInterval(this.refresher)
    await Promise.allSettled([...this.inFlight])
  }

  /** The next occurrences of a schedule after now (none while disabled). */
  nextTicks(spec: ScheduleSpec, n = 3): string[] {
    if (!spec.enabled) return []
    try {
      return compileCron(spec.cron, spec.timezone)
        .nextRuns(n, new Date(this.now()))
        .map((d) => d.toISOString())
    } catch {
      return []
    }
  }

  /** A manual run of a schedule (`POST /v1/schedules/{name}/trigger`), as the schedule's principal. */
  async trigger(ctx: CallContext, name: string): Promise<RunRecord> {
    const r = await this.o.store.resources.get(ctx, 'Schedule', name)
    if (!r) throw new GatewayError('not_found', `schedule ${name} not found`)
    const run = await this.startRun(r.tenant, name, r.spec as ScheduleSpec, ctx.requestId)
    void this.o.audit.action(ctx, 'schedule.trigger', `${name}/${run.id}`)
    return run
  }

  // ---- the loop --------------------------------------------------------------------------------

  private arm(delayMs: number): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.pass(), Math.max(0, delayMs))
    this.timer.unref()
  }

  /** One pass: every due tick is handed to a handler (not awaited), then the timer is set for the next. */
  private pass(): void {
    if (this.stopped) return
    const now = this.now()
    let wake = now + this.refreshMs
    for (const e of this.entries.values()) {
      if (!e.spec.enabled) continue
      if (e.resuming) {
        e.resuming = false
        this.track(this.resume(e))
        continue
      }
      const plan = planTicks(e.cron, e.next, now, this.graceMs)
      e.next = plan.next
      if (plan.missed && !e.job) {
        this.o.logger.warn(
          { schedule: key(e.tenant, e.name), missed: plan.missed, policy: e.spec.missed },
          'schedule missed ticks',
        )
        if (e.spec.missed === 'run_once' && plan.latestMissed !== undefined)
          this.track(this.tick(e, plan.latestMissed, true))
      }
      for (const t of plan.onTime) this.track(this.tick(e, t, false))
      if (e.next !== undefined) wake = Math.min(wake, e.next)
    }
    this.arm(wake - this.now())
  }

  /** First load in this process: continue after the cluster's last tick, so downtime counts as missed. */
  private async resume(e: Entry): Promise<void> {
    try {
      const last = await this.o.store.schedules.lastTick(e.tenant, e.name)
      const from = last ? Date.parse(last.tickAt) : this.now()
      e.next = nextAfter(e.cron, from)
    } catch (err) {
      e.resuming = true // the next pass tries again
      this.o.logger.error({ err, schedule: key(e.tenant, e.name) }, 'cannot read the last tick of a schedule')
      return
    }
    this.arm(0)
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p)
    void p.finally(() => this.inFlight.delete(p))
  }

  /** Claims one tick; the winner (one process in the cluster) starts its run and records the outcome. */
  private async tick(e: Entry, atMs: number, missed: boolean): Promise<void> {
    const tick: TickKey = { tenant: e.tenant, schedule: e.name, tickAt: new Date(atMs).toISOString() }
    try {
      if (!(await this.o.store.schedules.claimTick(tick, this.o.owner, this.now()))) return
    } catch (err) {
      this.o.logger.error({ err, tick }, 'cannot claim a schedule tick')
      return
    }
    await this.execute(e, tick, missed)
  }

  private async execute(e: Entry, tick: TickKey, missed: boolean): Promise<void> {
    const label = `${e.name}@${tick.tickAt}`
    if (e.job) {
      try {
        await e.job.run()
        await this.o.store.schedules.finishTick(this.o.owner, tick, { status: 'started' })
      } catch (err) {
        this.o.logger.error({ err, job: e.name }, 'system job failed')
        await this.o.store.schedules
          .finishTick(this.o.owner, tick, { status: 'failed', reason: (err as Error).message })
          .catch(() => {})
      }
      return
    }
    const ctx = scheduleContext(e.tenant, e.name)
    try {
      const run = await this.startRun(e.tenant, e.name, e.spec, undefined)
      await this.o.store.schedules.finishTick(this.o.owner, tick, { status: 'started', runId: run.id })
      if (missed) void this.o.audit.action(ctx, 'schedule.missed', `${label}/${run.id}`)
    } catch (err) {
      const skipped = err instanceof GatewayError && err.code === 'conflict'
      const reason = skipped
        ? `the previous run is still active (overlap: skip): ${(err as Error).message}`
        : err instanceof GatewayError
          ? `${err.code}: ${err.message}`
          : 'internal error'
      if (!skipped) this.o.logger.warn({ err, tick }, 'schedule tick failed to start its run')
      await this.o.store.schedules
        .finishTick(this.o.owner, tick, { status: skipped ? 'skipped' : 'failed', reason })
        .catch((e2: unknown) => this.o.logger.error({ err: e2, tick }, 'cannot record a tick outcome'))
      void this.o.audit.action(ctx, 'schedule.tick', label, skipped ? 'cancelled' : 'error')
    }
  }

  /** Starts a run of the schedule on its thread, as its principal; overlap skip = reject when busy. */
  private async startRun(
    tenant: string,
    name: string,
    spec: ScheduleSpec,
    requestId: string | undefined,
  ): Promise<RunRecord> {
    const ctx = scheduleContext(tenant, name, requestId)
    const threadId = scheduleThread(name)
    if (!(await this.o.store.runs.getThread(ctx, threadId))) {
      try {
        await this.o.store.runs.createThread(ctx, { id: threadId, metadata: { schedule: name } })
      } catch (err) {
        // Another tick or replica created it first.
        if (!(err instanceof GatewayError && err.code === 'conflict')) throw err
      }
    }
    return this.o.runs.create(ctx, {
      agent: spec.agent,
      input: spec.input,
      threadId,
      multitaskStrategy: spec.overlap === 'skip' ? 'reject' : 'enqueue',
    })
  }

  // ---- refresh and recovery -------------------------------------------------------------------

  private refreshing?: Promise<void>

  /** Re-reads Schedule manifests (another replica may have applied some) and recovers stale claims. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const op = systemContext('default')
        this.load(await this.o.store.resources.list(op, 'Schedule', { allTenants: true }))
        const stale = await this.o.store.schedules.reclaimStale(this.o.owner, this.now(), this.staleMs, 20)
        // One at a time, newest tick first: an orphan run goes to the latest tick it could belong to.
        stale.sort((x, y) => (x.tickAt < y.tickAt ? 1 : -1))
        for (const t of stale) {
          const p = this.recover(t)
          this.track(p)
          await p
        }
      } catch (err) {
        this.o.logger.error({ err }, 'schedule refresh failed')
      } finally {
        this.refreshing = undefined
      }
    })()
    return this.refreshing
  }

  /**
   * A tick whose claimer stopped before recording an outcome: if that claimer already started the
   * run (a run on the schedule's thread since the tick that no tick records), record it; otherwise
   * start it now. System jobs are not re-run (their next interval does the work).
   */
  private async recover(t: TickRecord): Promise<void> {
    const e = this.entries.get(key(t.tenant, t.schedule))
    if (!e || e.job || !e.spec.enabled) {
      await this.o.store.schedules
        .finishTick(this.o.owner, t, { status: 'failed', reason: 'the claiming process stopped' })
        .catch(() => {})
      return
    }
    try {
      const ctx = scheduleContext(t.tenant, t.schedule)
      const recorded = new Set(
        (await this.o.store.schedules.listTicks(ctx, t.schedule, 200)).map((x) => x.runId),
      )
      const page = await this.o.store.runs.list(ctx, { threadId: scheduleThread(t.schedule), limit: 50 })
      const orphan = page.items.filter((r) => r.createdAt >= t.tickAt && !recorded.has(r.id)).at(-1)
      if (orphan) {
        await this.o.store.schedules.finishTick(this.o.owner, t, { status: 'started', runId: orphan.id })
        return
      }
    } catch (err) {
      this.o.logger.error({ err, tick: t }, 'cannot recover a schedule tick')
      return
    }
    await this.execute(e, t, false)
  }
}
