/**
 * The connectors bundled with the gateway, run in-process for `transport: builtin` manifests.
 * Each tool call gets the calling user's own token (see connectors/README.md).
 */
import { github } from './github/index.js'
import { slack } from './slack/index.js'
import type { BuiltinConnector } from './types.js'

export const BUILTIN_CONNECTORS: Readonly<Record<string, BuiltinConnector>> = Object.freeze({ github, slack })

export { UpstreamAuthError } from './types.js'
export type {
  BuiltinConnector,
  BuiltinConnectorOptions,
  BuiltinTool,
  BuiltinToolContext,
  ToolResult,
} from './types.js'
