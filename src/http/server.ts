import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { RequestMeta } from '../auth/authenticator.js'
import { AuthError } from '../auth/oidc.js'
import { sourceOf } from '../auth/rate-limit.js'
import type { GatewayAuth } from '../auth/setup.js'
import { createContext, hasRole, type CallContext, type TraceContext } from '../context.js'
import { GatewayError, toGatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../telemetry/metrics.js'
import { createOriginGuard, type OriginGuardOptions } from './guard.js'
import { makeRouteRequest, type Route, type Router } from './router.js'

export interface HttpServerOptions {
  router: Router
  /** API keys and OIDC tokens; challenges, scopes and the failed-authentication limiter. */
  auth: GatewayAuth
  metrics: Metrics
  logger: Logger
  maxBodyBytes: number
  guard: OriginGuardOptions
  /** False while starting or draining: /readyz answers 503 and new work is refused. */
  isReady(): boolean
}

const JSON_TYPE = 'application/json; charset=utf-8'
const NO_TRACE: TraceContext = Object.freeze({})

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
  // Budgets and rate limits (policy) say when to come back.
  const retry = (err.details as { retry_after_seconds?: unknown } | undefined)?.retry_after_seconds
  if (err.code === 'rate_limited' && typeof retry === 'number') headers['retry-after'] = String(retry)
  sendJson(res, err.httpStatus, err.toBody(), headers)
}

/**
 * The path of a request target that needs no normalising (origin-form, no dot segments, no
 * doubled or back slashes, no escapes): what `new URL()` would give, without building one.
 * Anything else returns undefined and is parsed by the WHATWG URL parser.
 */
export function plainPath(target: string): string | undefined {
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  if (path.charCodeAt(0) !== 47 /* / */ || !PLAIN_PATH.test(path)) return undefined
  return path
}
/** Letters, digits and `-_~` between single slashes, with dots only inside a segment's name. */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9_~-]+(?:\.[A-Za-z0-9_~-]+)*)*\/?$/

/** `METHOD /path/{param}`: the route's metrics label, made once per route. */
const labels = new WeakMap<Route, string>()
function routeLabel(route: Route): string {
  let l = labels.get(route)
  if (l === undefined) labels.set(route, (l = `${route.method} ${route.path}`))
  return l
}

/** One HTTP listener for every surface: routing, the origin guard, authentication and roles. */
export function createHttpServer(opts: HttpServerOptions): Server {
  const guard = createOriginGuard(opts.guard)
  const { authenticator, resource, limiter } = opts.auth

  /**
   * Authenticates credentials the cache does not already know good (those are answered before,
   * without a promise, even for a source out of failed attempts), or answers the request (401 with
   * a challenge naming the metadata and the scope, 403 for a user Gatehouse will not admit, 429
   * for a source out of failed attempts) and returns undefined. Presented-but-refused credentials
   * are audited and spend the source's budget; a request without any credentials is the normal
   * start of an OAuth flow and does neither.
   */
  const authenticate = async (
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    route: string,
    meta: RequestMeta,
  ): Promise<CallContext | undefined> => {
    const authorization = req.headers.authorization
    const requestId = meta.requestId!
    // No source failed lately (the usual case): no address lookup at all.
    let source = authorization && limiter.active ? sourceOf(req, opts.auth.trustProxy) : ''
    const wait = source ? limiter.retryAfterMs(source) : 0
    if (wait > 0) {
      sendJson(
        res,
        429,
        new GatewayError(
          'rate_limited',
          'too many failed authentication attempts from this address',
        ).toBody(),
        { 'retry-after': String(Math.ceil(wait / 1000)) },
      )
      return undefined
    }
    try {
      return await authenticator.authenticate(authorization, meta)
    } catch (err) {
      if (!(err instanceof AuthError)) throw err
      if (err.reason !== 'missing') {
        source ||= sourceOf(req, opts.auth.trustProxy)
        if (limiter.fail(source))
          opts.auth.recordFailure({ source, route, reason: 'rate_limited', requestId })
        opts.auth.recordFailure({ source, route, reason: err.reason, requestId })
      }
      const headers: Record<string, string> =
        err.code === 'unauthenticated'
          ? {
              'www-authenticate': resource.unauthorizedChallenge(
                pathname,
                err.reason === 'missing' ? undefined : { description: err.message },
              ),
            }
          : {}
      sendJson(res, err.httpStatus, err.toBody(), headers)
      return undefined
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<string> => {
    const target = req.url ?? '/'
    let url: URL | undefined
    const parseUrl = () => (url ??= new URL(target, 'http://gatehouse.invalid'))
    const pathname = plainPath(target) ?? parseUrl().pathname
    const match = opts.router.match(req.method ?? 'GET', pathname)
    if (match === undefined) throw new GatewayError('not_found', `no route for ${pathname}`)
    if (match === 'method') {
      throw new GatewayError('method_not_allowed', `method ${req.method} is not allowed on ${pathname}`)
    }
    const { route, params } = match
    guard(req)
    // A caller's request id is echoed and logged: keep it short and free of control characters.
    const given = req.headers['x-request-id']
    const requestId =
      typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID()
    res.setHeader('x-request-id', requestId)
    let ctx: CallContext | undefined
    if (route.auth === 'optional' && req.headers.authorization === undefined) {
      ctx = createContext({
        tenant: 'default',
        principal: { kind: 'service', id: 'anonymous' },
        requestId,
      })
    } else if (route.auth !== 'none') {
      const { traceparent, tracestate } = req.headers
      const meta: RequestMeta = {
        requestId,
        trace:
          typeof traceparent === 'string'
            ? typeof tracestate === 'string'
              ? { traceparent, tracestate }
              : { traceparent }
            : NO_TRACE,
        audiences: resource.audiencesFor(pathname),
      }
      // Credentials known good answer from the cache without a promise; the rest take the full path.
      ctx =
        authenticator.cached(req.headers.authorization, meta) ??
        (await authenticate(req, res, pathname, routeLabel(route), meta))
      if (!ctx) return 'auth'
      if (route.roles && !ctx.operator && !hasRole(ctx, ...route.roles)) {
        throw new GatewayError('forbidden', `this needs one of the roles: ${route.roles.join(', ')}`)
      }
      const scope = ctx.scopesEnforced ? resource.scopeFor(pathname) : undefined
      if (scope && !ctx.scopes.includes(scope)) {
        const scopes = resource.stepUpScopes(ctx, scope)
        sendJson(
          res,
          403,
          new GatewayError('forbidden', `insufficient_scope: this needs the scope ${scope}`, {
            details: { error: 'insufficient_scope', required_scope: scope, scope: scopes.join(' ') },
          }).toBody(),
          { 'www-authenticate': resource.insufficientScopeChallenge(pathname, scopes) },
        )
        return 'auth'
      }
    }
    const rr = makeRouteRequest(req, res, url ?? parseUrl, params, ctx as CallContext, opts.maxBodyBytes)
    const reply = await route.handler(rr)
    if (reply) sendJson(res, reply.status ?? 200, reply.body, reply.headers)
    return routeLabel(route)
  }

  return createServer((req, res) => {
    handle(req, res).then(
      (route) => opts.metrics.recordHttp(route, res.statusCode),
      (err: unknown) => {
        const ge = toGatewayError(err)
        if (ge.code === 'internal') opts.logger.error({ err, url: req.url }, 'request failed')
        sendError(res, ge)
        opts.metrics.recordHttp('error', res.statusCode)
      },
    )
  })
}
