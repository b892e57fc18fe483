import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ZodType } from 'zod'
import type { CallContext, Role } from '../context.js'
import { GatewayError } from '../errors.js'
import { parseJson, readBody } from './body.js'

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** What a route handler gets: the raw request/response for streaming, plus parsed pieces. */
export interface RouteRequest {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  params: Record<string, string>
  /** Present unless the route is `auth: 'none'` (anonymous, tenant `default`, no roles, on `optional` routes without credentials). */
  ctx: CallContext
  /** Raw body, size-limited; read once. */
  body(): Promise<Buffer>
  /** JSON body validated by a zod schema; errors name the failing path. */
  json<T>(schema: ZodType<T>): Promise<T>
}

/** A JSON reply; handlers that stream write to `res` themselves and return undefined. */
export interface JsonReply {
  status?: number
  body?: unknown
  headers?: Record<string, string>
}

export type Handler = (r: RouteRequest) => Promise<JsonReply | undefined>

export interface Route {
  method: Method
  /** Path pattern with `{param}` segments, e.g. `/v1/admin/keys/{id}`. */
  path: string
  /**
   * `none` for health and metrics; `optional` authenticates a caller that sends credentials
   * (bad ones are 401) and serves anyone else as an anonymous caller of tenant `default`
   * (public A2A agent cards); everything else is `required`.
   */
  auth: 'none' | 'optional' | 'required'
  /** Any of these roles may call; absent means any authenticated principal. */
  roles?: Role[]
  /** Short description for docs and the isolation matrix. */
  summary: string
  handler: Handler
}

interface Compiled extends Route {
  re: RegExp
  names: string[]
}

export interface Match {
  route: Route
  params: Record<string, string>
}

/** A tiny exact-segment router; the route table itself is data that tests iterate. */
export class Router {
  private readonly compiled: Compiled[] = []
  /** Routes without parameters, by path and then method: one map lookup for the common case. */
  private readonly exact = new Map<string, Map<string, Compiled>>()

  constructor(readonly routes: readonly Route[]) {
    for (const r of routes) {
      const names: string[] = []
      // Literal parts match literally (a `.` in `/.well-known` is a dot, not any character).
      const src = r.path
        .split(/(\{[a-zA-Z_]+\})/)
        .map((part) => {
          const param = /^\{([a-zA-Z_]+)\}$/.exec(part)
          if (!param) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
          names.push(param[1]!)
          return '([^/]+)'
        })
        .join('')
      const c = { ...r, re: new RegExp(`^${src}$`), names }
      // Only where no earlier route takes the same request: the scan below would find this one first.
      const shadowed = this.compiled.some((e) => e.method === r.method && e.re.test(r.path))
      this.compiled.push(c)
      if (names.length === 0 && !shadowed) {
        let byMethod = this.exact.get(r.path)
        if (!byMethod) this.exact.set(r.path, (byMethod = new Map()))
        byMethod.set(r.method, c)
      }
    }
  }

  /** undefined: no such path; 'method': path exists with other methods. */
  match(method: string, pathname: string): Match | 'method' | undefined {
    const exact = this.exact.get(pathname)?.get(method)
    if (exact) return { route: exact, params: {} }
    let pathMatched = false
    for (const c of this.compiled) {
      const m = c.re.exec(pathname)
      if (!m) continue
      pathMatched = true
      if (c.method !== method) continue
      const params: Record<string, string> = {}
      c.names.forEach((n, i) => {
        params[n] = decodePart(m[i + 1]!)
      })
      return { route: c, params }
    }
    return pathMatched ? 'method' : undefined
  }
}

/**
 * `url` is parsed on first use: most requests (MCP calls) never need more than the path. A class
 * with the getter on its prototype, not an object literal with `get url()`: V8 builds literals with
 * accessors on a slow path whose objects keep everything they reference alive through scavenges
 * (measured: 2-3x the young-generation survival per tool call).
 */
class LazyRouteRequest implements RouteRequest {
  private parsedUrl: URL | undefined
  private raw: Promise<Buffer> | undefined

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly makeUrl: URL | (() => URL),
    readonly params: Record<string, string>,
    readonly ctx: CallContext,
    private readonly maxBodyBytes: number,
  ) {}

  get url(): URL {
    return (this.parsedUrl ??= typeof this.makeUrl === 'function' ? this.makeUrl() : this.makeUrl)
  }

  body(): Promise<Buffer> {
    return (this.raw ??= readBody(this.req, this.maxBodyBytes))
  }

  async json<T>(schema: ZodType<T>): Promise<T> {
    const parsed = schema.safeParse(parseJson(await this.body()))
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
      throw new GatewayError('bad_request', `invalid request body: ${problems.join('; ')}`, {
        details: parsed.error.issues,
      })
    }
    return parsed.data
  }
}

export function makeRouteRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL | (() => URL),
  params: Record<string, string>,
  ctx: CallContext,
  maxBodyBytes: number,
): RouteRequest {
  return new LazyRouteRequest(req, res, url, params, ctx, maxBodyBytes)
}

/** A path parameter, percent-decoded; malformed escapes (`%ZZ`, a cut UTF-8 sequence) are a 400. */
function decodePart(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new GatewayError('bad_request', 'malformed percent-encoding in the request path')
  }
}
