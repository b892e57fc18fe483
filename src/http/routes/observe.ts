import { GatewayError } from '../../errors.js'
import type { Route } from '../router.js'
import type { RouteDeps } from './deps.js'
import { targetContext } from './admin.js'

/** Audit log and traces: admins and auditors of the tenant. */
export function observeRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/audit',
      auth: 'required',
      roles: ['admin', 'auditor'],
      summary: 'audit events of the tenant, newest first',
      handler: async (r) => {
        const q = r.url.searchParams
        const limit = q.get('limit')
        const page = await deps.store.audit.list(targetContext(r), {
          ...(limit ? { limit: Number(limit) || 100 } : {}),
          ...(q.get('before') ? { before: q.get('before')! } : {}),
          ...(q.get('action') ? { action: q.get('action')! } : {}),
          ...(q.get('principal') ? { principal: q.get('principal')! } : {}),
        })
        return { body: { items: page.items, next: page.next ?? null } }
      },
    },
    {
      method: 'GET',
      path: '/v1/traces',
      auth: 'required',
      roles: ['admin', 'auditor'],
      summary: 'recent spans of the tenant',
      handler: async (r) => ({
        body: {
          items: await deps.store.spans.recent(
            targetContext(r),
            Number(r.url.searchParams.get('limit') ?? 100) || 100,
          ),
        },
      }),
    },
    {
      method: 'GET',
      path: '/v1/traces/{traceId}',
      auth: 'required',
      roles: ['admin', 'auditor'],
      summary: 'all spans of one trace',
      handler: async (r) => {
        const spans = await deps.store.spans.listTrace(targetContext(r), r.params.traceId!)
        // Another tenant's trace is as unknown as one that never existed.
        if (!spans.length) throw new GatewayError('not_found', `trace ${r.params.traceId} not found`)
        return { body: { trace_id: r.params.traceId, spans } }
      },
    },
  ]
}
