import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Authenticator } from '../auth/authenticator.js'
import { hasRole } from '../context.js'
import { GatewayError, toGatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../telemetry/metrics.js'
import { createOriginGuard, type OriginGuardOptions } from './guard.js'
import { makeRouteRequest, type Router } from './router.js'

export interface HttpServerOptions {
  router: Router
  authenticator: Authenticator
  metrics: Metrics
  logger: Logger
  maxBodyBytes: number
  guard: OriginGuardOptions
  /** False while starting or draining: /readyz answers 503 and new work is refused. */
  isReady(): boolean
}

const JSON_TYPE = 'application/json; charset=utf-8'

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const payload = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, { ...(payload ? { 'content-type': JSON_TYPE } : {}), ...headers })
  res.end(payload)
}

export function sendError(res: ServerResponse, err: GatewayError): void {
  const headers: Record<string, string> = {}
  if (err.code === 'unauthenticated') headers['www-authenticate'] = 'Bearer'
  if (err.code === 'payload_too_large') headers.connection = 'close'
  sendJson(res, err.httpStatus, err.toBody(), headers)
}

/** One HTTP listener for every surface: routing, the origin guard, authentication and roles. */
export function createHttpServer(opts: HttpServerOptions): Server {
  const guard = createOriginGuard(opts.guard)
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<string> => {
    const url = new URL(req.url ?? '/', 'http://gatehouse.invalid')
    const match = opts.router.match(req.method ?? 'GET', url.pathname)
    if (match === undefined) throw new GatewayError('not_found', `no route for ${url.pathname}`)
    if (match === 'method') {
      throw new GatewayError('method_not_allowed', `method ${req.method} is not allowed on ${url.pathname}`)
    }
    const { route, params } = match
    guard(req)
    // A caller's request id is echoed and logged: keep it short and free of control characters.
    const given = req.headers['x-request-id']
    const requestId =
      typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID()
    res.setHeader('x-request-id', requestId)
    const ctx =
      route.auth === 'none'
        ? undefined
        : await opts.authenticator.authenticate(req.headers.authorization, {
            requestId,
            trace: {
              ...(typeof req.headers.traceparent === 'string'
                ? { traceparent: req.headers.traceparent }
                : {}),
              ...(typeof req.headers.tracestate === 'string' ? { tracestate: req.headers.tracestate } : {}),
            },
          })
    if (ctx && route.roles && !ctx.operator && !hasRole(ctx, ...route.roles)) {
      throw new GatewayError('forbidden', `this needs one of the roles: ${route.roles.join(', ')}`)
    }
    const rr = makeRouteRequest(req, res, url, params, ctx as NonNullable<typeof ctx>, opts.maxBodyBytes)
    const reply = await route.handler(rr)
    if (reply) sendJson(res, reply.status ?? 200, reply.body, reply.headers)
    return `${route.method} ${route.path}`
  }

  return createServer((req, res) => {
    handle(req, res).then(
      (route) => opts.metrics.httpRequests.inc({ route, status: String(res.statusCode) }),
      (err: unknown) => {
        const ge = toGatewayError(err)
        if (ge.code === 'internal') opts.logger.error({ err, url: req.url }, 'request failed')
        sendError(res, ge)
        opts.metrics.httpRequests.inc({ route: 'error', status: String(res.statusCode) })
      },
    )
  })
}
