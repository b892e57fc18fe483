import { randomUUID } from 'node:crypto'
import { z } from 'zod'
import { GatewayError } from '../../errors.js'
import type { AgentCatalog } from '../../runs/agents.js'
import { runView, threadView, type RunService } from '../../runs/service.js'
import { MULTITASK_STRATEGIES, RUN_STATUSES, type RunStatus, type RunStore } from '../../store/runs.js'
import type { Route, RouteRequest } from '../router.js'

export interface RunRouteDeps {
  runs: RunService
  store: RunStore
  catalog: AgentCatalog
  /** The key that signs a tenant's run webhooks when a run gives no secret of its own. */
  webhookSecret(tenant: string): string
}

const Webhook = z.union([
  z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }).transform((url) => ({ url })),
  z
    .object({
      url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }),
      secret: z.string().min(16, 'a webhook secret has at least 16 characters').max(512).optional(),
    })
    .strict(),
])

const RunBody = z
  .object({
    agent: z.string().min(1).max(64),
    input: z.unknown().optional(),
    thread_id: z.string().min(1).max(128).optional(),
    multitask_strategy: z.enum(MULTITASK_STRATEGIES as [string, ...string[]]).optional(),
    webhook: Webhook.optional(),
  })
  .strict()

const ThreadRunBody = RunBody.omit({ thread_id: true })

const ThreadBody = z
  .object({
    thread_id: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1–128 characters of [A-Za-z0-9._:-]')
      .optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .default({})

const ResumeBody = z.object({ value: z.unknown() }).strict()

const WRITE_ROLES: Route['roles'] = ['admin', 'member']

/** `Last-Event-ID` header (or `last_event_id` query for clients that cannot set headers). */
function lastEventId(r: RouteRequest): number {
  const raw = r.req.headers['last-event-id'] ?? r.url.searchParams.get('last_event_id') ?? '0'
  const n = Number(Array.isArray(raw) ? raw[0] : raw)
  if (!Number.isInteger(n) || n < 0)
    throw new GatewayError('bad_request', 'Last-Event-ID must be a non-negative integer')
  return n
}

function limitOf(r: RouteRequest): number | undefined {
  const l = r.url.searchParams.get('limit')
  if (l === null) return undefined
  const n = Number(l)
  if (!Number.isInteger(n) || n < 1 || n > 500)
    throw new GatewayError('bad_request', 'limit must be an integer from 1 to 500')
  return n
}

function statusOf(r: RouteRequest): RunStatus | undefined {
  const s = r.url.searchParams.get('status')
  if (s === null) return undefined
  if (!(RUN_STATUSES as readonly string[]).includes(s))
    throw new GatewayError('bad_request', `status must be one of ${RUN_STATUSES.join(', ')}`)
  return s as RunStatus
}

/** Runs, threads and the agents a caller may run (SPEC "Run API"). */
export function runRoutes(deps: RunRouteDeps): Route[] {
  const { runs, store, catalog } = deps
  const createRun = async (r: RouteRequest, threadId?: string) => {
    const body = await r.json(threadId ? ThreadRunBody : RunBody)
    const run = await runs.create(r.ctx, {
      agent: body.agent,
      input: body.input,
      ...((threadId ?? (body as z.infer<typeof RunBody>).thread_id)
        ? { threadId: threadId ?? (body as z.infer<typeof RunBody>).thread_id! }
        : {}),
      ...(body.multitask_strategy ? { multitaskStrategy: body.multitask_strategy as never } : {}),
      ...(body.webhook ? { webhook: body.webhook } : {}),
    })
    return { status: 201, body: runView(run), headers: { location: `/v1/runs/${run.id}` } }
  }
  const listRuns = async (r: RouteRequest, threadId?: string) => {
    const q = r.url.searchParams
    const status = statusOf(r)
    const limit = limitOf(r)
    const tid = threadId ?? q.get('thread_id') ?? undefined
    if (threadId && !(await store.getThread(r.ctx, threadId)))
      throw new GatewayError('not_found', `thread ${threadId} not found`)
    const page = await store.list(r.ctx, {
      ...(tid ? { threadId: tid } : {}),
      ...(status ? { status } : {}),
      ...(q.get('agent') ? { agent: q.get('agent')! } : {}),
      ...(limit ? { limit } : {}),
      ...(q.get('before') ? { before: q.get('before')! } : {}),
    })
    return { body: { items: page.items.map(runView), next: page.next ?? null } }
  }
  return [
    {
      method: 'GET',
      path: '/v1/admin/webhook-secret',
      auth: 'required',
      roles: ['admin'],
      summary: "the tenant's webhook signing secret (for runs that give none)",
      handler: async (r) => ({ body: { secret: deps.webhookSecret(r.ctx.tenant) } }),
    },
    {
      method: 'GET',
      path: '/v1/agents',
      auth: 'required',
      summary: 'agents of the tenant with their input schemas',
      handler: async (r) => {
        const items = await Promise.all(
          catalog.list(r.ctx.tenant).map(async (a) => {
            const d = await a
              .describe()
              .catch(() => ({ inputSchema: {} }) as { description?: string; inputSchema: unknown })
            return {
              name: a.name,
              type: a.spec.type,
              ...(d.description ? { description: d.description } : {}),
              input_schema: d.inputSchema,
            }
          }),
        )
        return { body: { items } }
      },
    },
    {
      method: 'POST',
      path: '/v1/runs',
      auth: 'required',
      roles: WRITE_ROLES,
      summary: 'start a run of an agent (optionally on a thread)',
      handler: (r) => createRun(r),
    },
    {
      method: 'GET',
      path: '/v1/runs',
      auth: 'required',
      summary: 'runs the caller may see, newest first',
      handler: (r) => listRuns(r),
    },
    {
      method: 'GET',
      path: '/v1/runs/{id}',
      auth: 'required',
      summary: 'one run',
      handler: async (r) => ({ body: runView(await runs.get(r.ctx, r.params.id!)) }),
    },
    {
      method: 'GET',
      path: '/v1/runs/{id}/events',
      auth: 'required',
      summary: "a run's events as SSE; Last-Event-ID resumes",
      handler: async (r) => {
        await runs.stream(r.ctx, r.params.id!, lastEventId(r), r.res)
        return undefined
      },
    },
    {
      method: 'GET',
      path: '/v1/runs/{id}/wait',
      auth: 'required',
      summary: 'long-poll until the run is terminal or interrupted (timeout seconds, default 30)',
      handler: async (r) => {
        const t = Number(r.url.searchParams.get('timeout') ?? 30)
        if (!Number.isFinite(t) || t < 0 || t > 300)
          throw new GatewayError('bad_request', 'timeout must be 0–300 seconds')
        const ac = new AbortController()
        r.res.on('close', () => ac.abort())
        return { body: runView(await runs.wait(r.ctx, r.params.id!, t * 1000, ac.signal)) }
      },
    },
    {
      method: 'POST',
      path: '/v1/runs/{id}/cancel',
      auth: 'required',
      roles: WRITE_ROLES,
      summary: 'cancel a run',
      handler: async (r) => ({ status: 202, body: runView(await runs.cancel(r.ctx, r.params.id!)) }),
    },
    {
      method: 'POST',
      path: '/v1/runs/{id}/resume',
      auth: 'required',
      roles: ['admin', 'member', 'approver'],
      summary: 'answer the interrupt of a run',
      handler: async (r) => {
        const { value } = await r.json(ResumeBody)
        return { status: 202, body: runView(await runs.resume(r.ctx, r.params.id!, value)) }
      },
    },
    {
      method: 'POST',
      path: '/v1/threads',
      auth: 'required',
      roles: WRITE_ROLES,
      summary: 'create a thread',
      handler: async (r) => {
        const body = await r.json(ThreadBody)
        const t = await store.createThread(r.ctx, {
          id: body.thread_id ?? randomUUID(),
          ...(body.metadata ? { metadata: body.metadata } : {}),
        })
        return { status: 201, body: threadView(t) }
      },
    },
    {
      method: 'GET',
      path: '/v1/threads',
      auth: 'required',
      summary: 'threads the caller may see, newest first',
      handler: async (r) => {
        const limit = limitOf(r)
        const before = r.url.searchParams.get('before')
        const page = await store.listThreads(r.ctx, {
          ...(limit ? { limit } : {}),
          ...(before ? { before } : {}),
        })
        return { body: { items: page.items.map(threadView), next: page.next ?? null } }
      },
    },
    {
      method: 'GET',
      path: '/v1/threads/{id}',
      auth: 'required',
      summary: 'one thread with its state',
      handler: async (r) => {
        const t = await store.getThread(r.ctx, r.params.id!)
        if (!t) throw new GatewayError('not_found', `thread ${r.params.id} not found`)
        return { body: threadView(t) }
      },
    },
    {
      method: 'DELETE',
      path: '/v1/threads/{id}',
      auth: 'required',
      roles: WRITE_ROLES,
      summary: 'delete a thread and its runs',
      handler: async (r) => {
        if (!(await store.deleteThread(r.ctx, r.params.id!)))
          throw new GatewayError('not_found', `thread ${r.params.id} not found`)
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      path: '/v1/threads/{id}/runs',
      auth: 'required',
      roles: WRITE_ROLES,
      summary: 'start a run on a thread',
      handler: (r) => createRun(r, r.params.id!),
    },
    {
      method: 'GET',
      path: '/v1/threads/{id}/runs',
      auth: 'required',
      summary: 'runs of a thread',
      handler: (r) => listRuns(r, r.params.id!),
    },
  ]
}
