import { Octokit } from '@octokit/rest'
import { errorResult, retryAfterSeconds } from '../tool.js'
import { UpstreamAuthError, type BuiltinToolContext, type ToolResult } from '../types.js'

export const GITHUB_API = 'https://api.github.com'

const API_VERSION = '2022-11-28'
const SILENT = { debug() {}, info() {}, warn() {}, error() {} }

/**
 * A fresh Octokit for one call, carrying one user's token. Never cached or shared: an instance is
 * bound to its token, and building one (~40 µs) is cheap next to the HTTP round trip.
 */
export function octokitFor(ctx: BuiltinToolContext, baseUrl: string): Octokit {
  const octokit = new Octokit({
    auth: ctx.token,
    baseUrl,
    userAgent: 'gatehouse-github-connector',
    log: SILENT,
    request: { signal: ctx.signal },
  })
  octokit.hook.before('request', (options) => {
    options.headers['x-github-api-version'] = API_VERSION
  })
  return octokit
}

/** What Octokit throws for an HTTP failure (`HttpError`); checked by shape, not by class identity. */
interface HttpError extends Error {
  status: number
  response?: { headers: Record<string, string | undefined>; data: unknown }
}

function isHttpError(err: unknown): err is HttpError {
  return err instanceof Error && err.name === 'HttpError' && typeof (err as HttpError).status === 'number'
}

/** The page number of `rel="next"` in a Link header, if there is a next page. */
export function nextPage(link: string | undefined): number | undefined {
  const next = link?.split(',').find((part) => /rel="next"/.test(part))
  const page = next?.match(/[?&]page=(\d+)/)?.[1]
  return page === undefined ? undefined : Number(page)
}

/** Maps an Octokit failure to a tool error, or throws UpstreamAuthError for a refused token. */
export function githubFailure(err: unknown): ToolResult {
  if (!isHttpError(err)) throw err
  if (err.response === undefined) return errorResult(`GitHub API unreachable: ${err.message}`)
  const headers = err.response.headers
  const message = apiMessage(err.response.data) ?? `HTTP ${err.status}`
  if (err.status === 401) throw new UpstreamAuthError(`GitHub refused the token: ${message}`, 401)
  const rateLimit = rateLimitText(err.status, headers)
  if (rateLimit !== undefined)
    return errorResult(`GitHub rate limit (HTTP ${err.status}): ${message.replace(/\.?$/, '.')} ${rateLimit}`)
  if (err.status === 403) {
    const missing = missingScopes(headers)
    if (missing !== undefined)
      throw new UpstreamAuthError(
        `GitHub needs a token with one of the scopes ${missing.join(', ')}: ${message}`,
        403,
        missing,
      )
  }
  return errorResult(`GitHub API error ${err.status}: ${message}`)
}

/** GitHub's `message`, with any per-field validation errors (422) spelled out. */
function apiMessage(data: unknown): string | undefined {
  if (typeof data === 'string') return data.trim() === '' ? undefined : data.slice(0, 500)
  if (typeof data !== 'object' || data === null) return undefined
  const { message, errors } = data as { message?: unknown; errors?: unknown }
  if (typeof message !== 'string') return undefined
  if (!Array.isArray(errors) || errors.length === 0) return message
  const details = errors.map((e) => {
    if (typeof e === 'string') return e
    const { field, code, message: m, value } = e as Record<string, unknown>
    const what = [field, code ?? m].filter((x) => typeof x === 'string').join(' ')
    return value === undefined ? what : `${what} (${JSON.stringify(value)})`
  })
  return `${message}: ${details.join('; ')}`
}

/** Primary (remaining 0) and secondary (Retry-After) limits; both come as 403 or 429. */
function rateLimitText(status: number, headers: Record<string, string | undefined>): string | undefined {
  if (status !== 403 && status !== 429) return undefined
  const after = retryAfterSeconds(headers['retry-after'])
  if (after !== undefined) return `Retry after ${after} seconds (Retry-After).`
  if (headers['x-ratelimit-remaining'] !== '0') return status === 429 ? 'Retry later.' : undefined
  const reset = Number(headers['x-ratelimit-reset'])
  if (!Number.isFinite(reset)) return 'Retry later.'
  const secs = Math.max(0, Math.ceil(reset - Date.now() / 1000))
  return `Retry after ${secs} seconds (limit resets at ${new Date(reset * 1000).toISOString()}).`
}

/** Scopes that imply others (GitHub OAuth app scopes). */
const IMPLIED: Readonly<Record<string, string[]>> = {
  repo: ['repo:status', 'repo_deployment', 'public_repo', 'repo:invite', 'security_events'],
  user: ['read:user', 'user:email', 'user:follow'],
  'admin:org': ['write:org', 'read:org', 'manage_runners:org'],
  'write:org': ['read:org'],
  'admin:public_key': ['write:public_key', 'read:public_key'],
  'write:public_key': ['read:public_key'],
  'admin:repo_hook': ['write:repo_hook', 'read:repo_hook'],
  'write:repo_hook': ['read:repo_hook'],
  'admin:gpg_key': ['write:gpg_key', 'read:gpg_key'],
  'write:gpg_key': ['read:gpg_key'],
  'write:packages': ['read:packages'],
  project: ['read:project'],
}

function scopeList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/**
 * When GitHub says which scopes the endpoint accepts and the token holds none of them (directly
 * or through a broader scope), the scopes that would do; otherwise the 403 is about something else.
 */
export function missingScopes(headers: Record<string, string | undefined>): string[] | undefined {
  const accepted = scopeList(headers['x-accepted-oauth-scopes'])
  if (accepted.length === 0 || headers['x-oauth-scopes'] === undefined) return undefined
  const held = new Set(scopeList(headers['x-oauth-scopes']).flatMap((s) => [s, ...(IMPLIED[s] ?? [])]))
  return accepted.some((s) => held.has(s)) ? undefined : accepted
}
