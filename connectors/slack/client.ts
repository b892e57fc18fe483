import { ErrorCode, LogLevel, WebClient, type FetchFunction, type Logger } from '@slack/web-api'
import { errorResult } from '../tool.js'
import { UpstreamAuthError, type BuiltinToolContext, type ToolResult } from '../types.js'

export const SLACK_API = 'https://slack.com/api/'

const SILENT: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  setLevel() {},
  getLevel: () => LogLevel.ERROR,
  setName() {},
}

/**
 * A fresh WebClient for one call, carrying one user's token. Never cached or shared. No retries
 * (a rate limit is reported, not waited out in a loop), and the call's signal reaches fetch.
 */
export function slackFor(ctx: BuiltinToolContext, apiUrl: string): WebClient {
  return new WebClient(ctx.token, {
    slackApiUrl: apiUrl,
    logger: SILENT,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    allowAbsoluteUrls: false,
    fetch: withSignal(ctx.signal),
  })
}

/** WebClient has no per-call signal, so the call's signal is joined to each fetch it makes. */
function withSignal(signal: AbortSignal | undefined): FetchFunction {
  return (url, init = {}) => {
    const joined = signal && init.signal ? AbortSignal.any([signal, init.signal]) : (signal ?? init.signal)
    return fetch(url, { ...init, signal: joined })
  }
}

/** Slack error codes that mean the token itself is no good: reconnect or refresh. */
const TOKEN_ERRORS = new Set([
  'invalid_auth',
  'not_authed',
  'token_revoked',
  'token_expired',
  'account_inactive',
])

interface SlackFailure extends Error {
  code: ErrorCode
  data?: { error?: string; needed?: string; response_metadata?: { messages?: string[] } }
  retryAfter?: number
  statusCode?: number
  original?: Error
}

function isSlackFailure(err: unknown): err is SlackFailure {
  return err instanceof Error && Object.values(ErrorCode).includes((err as SlackFailure).code)
}

/** Maps a WebClient failure to a tool error, or throws UpstreamAuthError for a refused token. */
export function slackFailure(err: unknown, _ctx: BuiltinToolContext): ToolResult {
  if (!isSlackFailure(err)) throw err
  switch (err.code) {
    case ErrorCode.PlatformError:
      return platformError(err.data ?? {})
    case ErrorCode.RateLimitedError:
      return errorResult(
        `Slack rate limit reached (ratelimited). Retry after ${err.retryAfter} seconds (Retry-After).`,
      )
    case ErrorCode.HTTPError:
      return errorResult(`Slack API answered HTTP ${err.statusCode}`)
    case ErrorCode.RequestError:
      return errorResult(`Slack API unreachable: ${networkReason(err.original ?? err)}`)
    default:
      return errorResult(`Slack API call failed: ${err.message}`)
  }
}

function platformError(data: NonNullable<SlackFailure['data']>): ToolResult {
  const code = data.error ?? 'unknown_error'
  if (TOKEN_ERRORS.has(code)) throw new UpstreamAuthError(`Slack refused the token: ${code}`, 401)
  if (code === 'missing_scope') {
    const needed = (data.needed ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    const which = needed.length > 0 ? `: needs ${needed.join(', ')}` : ''
    throw new UpstreamAuthError(
      `Slack token lacks a scope${which}`,
      403,
      needed.length > 0 ? needed : undefined,
    )
  }
  const details = data.response_metadata?.messages ?? []
  return errorResult(`Slack API error: ${code}${details.length > 0 ? ` (${details.join('; ')})` : ''}`)
}

/** fetch's "fetch failed" says little; its cause names the real problem (ECONNREFUSED, a DNS failure). */
function networkReason(err: Error): string {
  const cause = err.cause instanceof Error ? err.cause.message : undefined
  return cause !== undefined && cause !== '' ? `${err.message} (${cause})` : err.message
}
