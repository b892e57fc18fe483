import { z } from 'zod'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import type { ScheduleSpec } from '../../manifests/schema.js'
import { runView } from '../../runs/service.js'
import { scheduleThread, type Scheduler } from '../../schedules/scheduler.js'
import type { TickRecord } from '../../store/schedules.js'
import type { ResourceRecord, Store } from '../../store/types.js'
import type { AuditWriter } from '../../telemetry/audit.js'
import type { Route } from '../router.js'

export interface ScheduleRouteDeps {
  store: Store
  scheduler: Scheduler
  audit: AuditWriter
  /** Re-reads resources into the runtime after a write. */
  reload(): Promise<void>
}

const PatchBody = z.object({ enabled: z.boolean() }).strict()

function tickView(t: TickRecord): Record<string, unknown> {
  return {
    tick_at: t.tickAt,
    status: t.status,
    run_id: t.runId ?? null,
    ...(t.reason ? { reason: t.reason } : {}),
    updated_at: t.updatedAt,
  }
}

/** Schedules of the caller's tenant (docs/schedules.md): members read, admins write and trigger. */
export function scheduleRoutes(deps: ScheduleRouteDeps): Route[] {
  const { store, scheduler } = deps
  const find = async (ctx: CallContext, name: string): Promise<ResourceRecord> => {
    const r = await store.resources.get(ctx, 'Schedule', name)
    if (!r) throw new GatewayError('not_found', `schedule ${name} not found`)
    return r
  }
  const view = async (ctx: CallContext, r: ResourceRecord, ticks = 1): Promise<Record<string, unknown>> => {
    const spec = r.spec as ScheduleSpec
    const recent = await store.schedules.listTicks(ctx, r.name, ticks)
    return {
      name: r.name,
      ...(spec.description ? { description: spec.description } : {}),
      cron: spec.cron,
      timezone: spec.timezone,
      agent: spec.agent,
      input: spec.input,
      enabled: spec.enabled,
      overlap: spec.overlap,
      missed: spec.missed,
      thread_id: scheduleThread(r.name),
      next_ticks: scheduler.nextTicks(spec),
      last_tick: recent[0] ? tickView(recent[0]) : null,
      last_run_id: recent.find((t) => t.runId)?.runId ?? null,
      ...(ticks > 1 ? { recent_ticks: recent.map(tickView) } : {}),
      generation: r.generation,
      updated_at: r.updatedAt,
    }
  }
  return [
    {
      method: 'GET',
      path: '/v1/schedules',
      auth: 'required',
      summary: "the tenant's schedules with their next ticks and last run",
      handler: async (r) => {
        const items = await store.resources.list(r.ctx, 'Schedule')
        return { body: { items: await Promise.all(items.map((s) => view(r.ctx, s, 20))) } }
      },
    },
    {
      method: 'GET',
      path: '/v1/schedules/{name}',
      auth: 'required',
      summary: 'one schedule with its recent ticks',
      handler: async (r) => ({ body: await view(r.ctx, await find(r.ctx, r.params.name!), 20) }),
    },
    {
      method: 'PATCH',
      path: '/v1/schedules/{name}',
      auth: 'required',
      roles: ['admin'],
      summary: 'enable or disable a schedule',
      handler: async (r) => {
        const body = await r.json(PatchBody)
        const current = await find(r.ctx, r.params.name!)
        const spec = { ...(current.spec as ScheduleSpec), enabled: body.enabled }
        await store.resources.apply(r.ctx, [
          { kind: 'Schedule', tenant: r.ctx.tenant, name: current.name, spec },
        ])
        await deps.reload()
        void deps.audit.action(r.ctx, body.enabled ? 'schedule.enable' : 'schedule.disable', current.name)
        return { body: await view(r.ctx, await find(r.ctx, current.name), 20) }
      },
    },
    {
      method: 'DELETE',
      path: '/v1/schedules/{name}',
      auth: 'required',
      roles: ['admin'],
      summary: 'delete a schedule (its runs and thread stay)',
      handler: async (r) => {
        if (!(await store.resources.delete(r.ctx, 'Schedule', r.params.name!)))
          throw new GatewayError('not_found', `schedule ${r.params.name} not found`)
        await deps.reload()
        void deps.audit.action(r.ctx, 'schedule.delete', r.params.name!)
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      path: '/v1/schedules/{name}/trigger',
      auth: 'required',
      roles: ['admin'],
      summary: "start a run of the schedule now (as the schedule's principal, on its thread)",
      handler: async (r) => {
        const run = await scheduler.trigger(r.ctx, r.params.name!)
        return { status: 201, body: runView(run), headers: { location: `/v1/runs/${run.id}` } }
      },
    },
  ]
}
