import { describeEndpoint, OAuthError, safeText, toOAuthError } from './errors.js'

/** Per-request limits for metadata, registration and probe requests. */
const TIMEOUT_MS = 10_000
const MAX_BODY = 1024 * 1024

export interface JsonAnswer {
  status: number
  headers: Headers
  /** The parsed object, or undefined when the body was not a JSON object. */
  json: Record<string, unknown> | undefined
}

/**
 * One request for a JSON document (metadata, registration). Redirects are not followed: a
 * redirect to somewhere else would bypass the choice of fetch (trusted or SSRF-guarded).
 */
export async function fetchJson(
  f: typeof fetch,
  url: URL,
  what: string,
  init: RequestInit = {},
): Promise<JsonAnswer> {
  let res: Response
  try {
    res = await f(url.href, {
      ...init,
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>) },
    })
  } catch (err) {
    throw toOAuthError(err, `${what} ${describeEndpoint(url)}`)
  }
  const text = await readBounded(res, `${what} ${describeEndpoint(url)}`)
  let json: Record<string, unknown> | undefined
  try {
    const v = JSON.parse(text) as unknown
    if (v && typeof v === 'object' && !Array.isArray(v)) json = v as Record<string, unknown>
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, json }
}

async function readBounded(res: Response, what: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? 0)
  if (declared > MAX_BODY) {
    await res.body?.cancel()
    throw new OAuthError('invalid_response', `${what} answered more than ${MAX_BODY} bytes`)
  }
  try {
    const text = await res.text()
    if (text.length > MAX_BODY)
      throw new OAuthError('invalid_response', `${what} answered more than ${MAX_BODY} bytes`)
    return text
  } catch (err) {
    throw toOAuthError(err, what)
  }
}

/** "HTTP 500 (text/html)": what a failed metadata request answered, without its body. */
export function describeAnswer(a: JsonAnswer): string {
  const type = safeText(a.headers.get('content-type')?.split(';')[0] ?? 'no content-type', 60)
  return `HTTP ${a.status} (${a.json ? 'JSON' : type})`
}

/** Refuses http:// unless the client allows insecure requests (loopback tests, admin-written http URLs). */
export function assertSecure(url: URL, allowInsecure: boolean, what: string): void {
  if (url.protocol === 'https:') return
  if (url.protocol === 'http:' && allowInsecure) return
  throw new OAuthError(
    'insecure_endpoint',
    `${what} ${describeEndpoint(url)} is not https (allowInsecureRequests is off)`,
  )
}
