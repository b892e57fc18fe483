import type { CancelSignal } from './cancel.js'

/**
 * The JSON-RPC vocabulary shared by the upstream transports. Payloads are loose objects:
 * a proxy relays what it does not understand.
 */

export type JsonObject = Record<string, unknown>
export type RpcId = string | number

export interface RpcMessage {
  jsonrpc: '2.0'
  id?: RpcId | null
  method?: string
  params?: JsonObject
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
}

/** An error the upstream answered with (or a transport fault mapped to a JSON-RPC code). */
export class UpstreamRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
    this.name = 'UpstreamRpcError'
  }
}

/** The call's deadline passed before the upstream answered (made by the transports, not sent by an upstream). */
export class UpstreamTimeout extends UpstreamRpcError {
  constructor(timeoutMs: number) {
    super(-32001, `upstream did not answer within ${timeoutMs} ms`)
  }
}

/** An HTTP answer below 500 that carries no JSON-RPC message; `status` says which. */
export class UpstreamHttpStatus extends UpstreamRpcError {
  constructor(
    readonly status: number,
    text: string,
  ) {
    super(INTERNAL_ERROR, `upstream answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`)
  }
}

/**
 * The upstream refused the caller's credentials: HTTP 401 (token invalid, expired or revoked) or
 * 403 (for example `insufficient_scope`). `challenge` is its WWW-Authenticate header, if any.
 */
export class UpstreamAuthRejected extends UpstreamRpcError {
  constructor(
    readonly status: 401 | 403,
    readonly challenge: string | undefined,
    /** Scopes the upstream says it needs, when it says. */
    readonly scopes?: string[],
    message = `upstream refused the credentials (HTTP ${status})`,
  ) {
    super(-32603, message)
    this.name = 'UpstreamAuthRejected'
  }

  /** The WWW-Authenticate header (the name the OAuth client's callers use). */
  get wwwAuthenticate(): string | undefined {
    return this.challenge
  }
}

/** The upstream (or its process) is gone or unreachable; retrying later may work. */
export class UpstreamUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UpstreamUnavailableError'
  }
}

/** What one in-flight call wants to hear about while it runs. */
export interface CallHooks {
  /** `notifications/progress` for this call (the progress token is the call's own). */
  onProgress?(params: JsonObject): void
  /** Other notifications that arrived in the context of this call (logging, resource updates). */
  onNotification?(method: string, params: JsonObject | undefined): void
  /** Server→client requests made while this call runs (elicitation, sampling, roots). */
  onRequest?(method: string, params: JsonObject | undefined): Promise<unknown>
}

/** The caller's own upstream credential, from the token broker (per-user OAuth connectors). */
export interface CallerCredential {
  /** Whose it is: one upstream session per key (tenant and user). */
  key: string
  accessToken: string
}

export interface RequestOptions {
  hooks?: CallHooks
  /** Extra HTTP headers for this request (traceparent, Authorization); ignored on stdio. */
  headers?: Record<string, string>
  signal?: CancelSignal
  /** Set for brokered connectors; the connection picks the caller's own upstream session by it. */
  credential?: CallerCredential
  timeoutMs: number
}

/**
 * One connection to an upstream MCP server. `request` returns the result object or throws
 * UpstreamRpcError / UpstreamUnavailableError.
 */
export interface RpcTransport {
  request(method: string, params: JsonObject | undefined, opts: RequestOptions): Promise<JsonObject>
  notify(method: string, params?: JsonObject): Promise<void>
  /**
   * Ends the connection. `retire`: only new calls are refused; calls in flight run to their
   * end (an HTTP upstream whose session expired: they may still be answered, or learn of the
   * expiry themselves and retry on the new session).
   */
  close(retire?: boolean): Promise<void>
  /** Notifications not tied to a call (list_changed, stray logs). */
  onNotification?: (method: string, params: JsonObject | undefined) => void
  /** Fires once when the connection is lost for good (process exit, stream closed). */
  onClose?: (reason: Error) => void
}

export const METHOD_NOT_FOUND = -32601
export const INTERNAL_ERROR = -32603

/** Answers a server→client request with the hook's result, or a JSON-RPC error. */
export async function answerServerRequest(
  msg: RpcMessage,
  hooks: CallHooks | undefined,
  fallback: ((method: string, params: JsonObject | undefined) => Promise<unknown>) | undefined,
): Promise<RpcMessage> {
  const id = msg.id as RpcId
  const method = msg.method!
  try {
    if (method === 'ping') return { jsonrpc: '2.0', id, result: {} }
    const handler = hooks?.onRequest ?? fallback
    if (!handler) throw new UpstreamRpcError(METHOD_NOT_FOUND, `the gateway cannot relay ${method} here`)
    const result = await handler(method, msg.params)
    return { jsonrpc: '2.0', id, result: result ?? {} }
  } catch (err) {
    const code =
      err instanceof UpstreamRpcError
        ? err.code
        : typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : INTERNAL_ERROR
    return { jsonrpc: '2.0', id, error: { code, message: (err as Error).message ?? 'relay failed' } }
  }
}
