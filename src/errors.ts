/**
 * One error type for the whole gateway. A code maps, through one table, to the HTTP status,
 * the JSON-RPC error code and (later) the A2A reason, so every ingress reports a fault the same way.
 */
export type ErrorCode =
  | 'bad_request'
  | 'invalid_params'
  | 'invalid_manifest'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'not_acceptable'
  | 'rate_limited'
  | 'connection_required'
  | 'not_supported'
  | 'upstream_unavailable'
  | 'upstream_error'
  | 'timeout'
  | 'cancelled'
  | 'unavailable'
  | 'internal'

interface CodeInfo {
  http: number
  jsonrpc: number
  retryable: boolean
}

/** The one table: code → wire codes. Internal faults are 5xx, never the client's fault. */
export const ERROR_TABLE: Readonly<Record<ErrorCode, CodeInfo>> = {
  bad_request: { http: 400, jsonrpc: -32600, retryable: false },
  invalid_params: { http: 400, jsonrpc: -32602, retryable: false },
  invalid_manifest: { http: 400, jsonrpc: -32602, retryable: false },
  unauthenticated: { http: 401, jsonrpc: -32001, retryable: false },
  forbidden: { http: 403, jsonrpc: -32003, retryable: false },
  not_found: { http: 404, jsonrpc: -32004, retryable: false },
  method_not_allowed: { http: 405, jsonrpc: -32601, retryable: false },
  conflict: { http: 409, jsonrpc: -32009, retryable: false },
  payload_too_large: { http: 413, jsonrpc: -32600, retryable: false },
  unsupported_media_type: { http: 415, jsonrpc: -32600, retryable: false },
  not_acceptable: { http: 406, jsonrpc: -32600, retryable: false },
  rate_limited: { http: 429, jsonrpc: -32029, retryable: true },
  /** The caller has no (usable) account connection for an oauth2 connector; details carry the connect URL. */
  connection_required: { http: 403, jsonrpc: -32042, retryable: true },
  not_supported: { http: 501, jsonrpc: -32601, retryable: false },
  upstream_unavailable: { http: 502, jsonrpc: -32002, retryable: true },
  upstream_error: { http: 502, jsonrpc: -32002, retryable: false },
  timeout: { http: 504, jsonrpc: -32001, retryable: true },
  cancelled: { http: 499, jsonrpc: -32800, retryable: false },
  unavailable: { http: 503, jsonrpc: -32603, retryable: true },
  internal: { http: 500, jsonrpc: -32603, retryable: false },
}

export interface GatewayErrorOptions {
  cause?: unknown
  /** Structured detail safe to show the caller (never secrets). */
  details?: unknown
  retryable?: boolean
}

export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly details: unknown
  readonly retryable: boolean

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.details = options.details
    this.retryable = options.retryable ?? ERROR_TABLE[code].retryable
  }

  get httpStatus(): number {
    return ERROR_TABLE[this.code].http
  }

  get jsonRpcCode(): number {
    return ERROR_TABLE[this.code].jsonrpc
  }

  /** The `{"error":{code,message}}` body of the REST API. */
  toBody(): { error: { code: string; message: string; details?: unknown } } {
    const error: { code: string; message: string; details?: unknown } = {
      code: this.code,
      message: this.message,
    }
    if (this.details !== undefined) error.details = this.details
    return { error }
  }
}

/** Anything thrown that is not a GatewayError is an internal fault; its message is not shown. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  return new GatewayError('internal', 'internal error', { cause: err })
}
