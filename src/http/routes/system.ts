import type { Store } from '../../store/types.js'
import type { Metrics } from '../../telemetry/metrics.js'
import type { Route } from '../router.js'

/** Liveness, readiness and Prometheus metrics: unauthenticated, no tenant data. */
export function systemRoutes({
  store,
  metrics,
  isReady,
}: {
  store: Store
  metrics: Metrics
  isReady(): boolean
}): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      auth: 'none',
      summary: 'liveness',
      handler: async () => ({ body: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      auth: 'none',
      summary: 'readiness: store reachable and not draining',
      handler: async () => {
        if (!isReady()) return { status: 503, body: { status: 'not ready' } }
        try {
          await store.ping()
        } catch {
          return { status: 503, body: { status: 'store unavailable' } }
        }
        return { body: { status: 'ready' } }
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      auth: 'none',
      summary: 'Prometheus metrics',
      handler: async (r) => {
        r.res.writeHead(200, { 'content-type': metrics.registry.contentType })
        r.res.end(await metrics.registry.metrics())
        return undefined
      },
    },
  ]
}
