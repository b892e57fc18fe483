/**
 * The contract between the gateway and a bundled (in-process) connector. A connector is a set of
 * tools; each call gets the calling user's own upstream token, never a shared one.
 */

/** What a tool returns: MCP's CallToolResult shape, text plus a structured projection. */
export interface ToolResult {
  content: { type: 'text'; text: string }[]
  structuredContent?: Record<string, unknown>
  isError?: boolean
}

/** Per-call input from the gateway: the caller's brokered token and the call's cancellation. */
export interface BuiltinToolContext {
  token: string
  signal?: AbortSignal
}

export interface BuiltinTool {
  /** `[a-z0-9_]`, no prefix (the gateway adds `{connector}__`). */
  name: string
  title?: string
  description: string
  /** JSON Schema (`type: object`) derived from the zod schema `run` validates with. */
  inputSchema: Record<string, unknown>
  outputSchema?: Record<string, unknown>
  annotations?: {
    readOnlyHint?: boolean
    destructiveHint?: boolean
    idempotentHint?: boolean
    openWorldHint?: boolean
  }
  /**
   * Runs the tool. Invalid arguments and API errors resolve to `isError: true` results; a token the
   * upstream refuses rejects with `UpstreamAuthError`; a cancelled call rejects with the signal's reason.
   */
  run(args: Record<string, unknown>, ctx: BuiltinToolContext): Promise<ToolResult>
}

/**
 * The upstream refused the token: 401 (invalid, expired or revoked: the gateway refreshes or asks
 * the user to reconnect) or 403 for missing scopes (`scopes`: what the upstream said it needs, when
 * it says; for GitHub any one of them is accepted). The message never contains the token.
 */
export class UpstreamAuthError extends Error {
  constructor(
    message: string,
    readonly status: 401 | 403,
    readonly scopes?: string[],
  ) {
    super(message)
    this.name = 'UpstreamAuthError'
  }
}

export interface BuiltinConnectorOptions {
  /** API base URL from the manifest's `base_url` (GitHub Enterprise, or a loopback fake in tests). */
  baseUrl?: string
}

export interface BuiltinConnector {
  /** 'github' | 'slack' */
  name: string
  description: string
  /** The OAuth provider preset the connector's manifest uses by default, and the scopes its tools need. */
  oauth: { provider: string; defaultScopes: string[] }
  /** The tool list for one configured connector; tools hold no token and may be shared by all users. */
  tools(options: BuiltinConnectorOptions): BuiltinTool[]
}
