import type { BuiltinConnector, BuiltinTool, ToolResult } from '../../connectors/types.js'

/** The connector's tools keyed by name, pointed at a fake's base URL. */
export function toolMap(connector: BuiltinConnector, baseUrl: string): Map<string, BuiltinTool> {
  return new Map(connector.tools({ baseUrl }).map((t) => [t.name, t]))
}

/** A caller bound to one token: `as(token)('get_me', {})`. */
export function caller(tools: Map<string, BuiltinTool>) {
  return (token: string, signal?: AbortSignal) =>
    async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> => {
      const tool = tools.get(name)
      if (!tool) throw new Error(`no tool ${name}`)
      return tool.run(args, { token, signal })
    }
}

/** The structured content of a successful result, checking the text rendering says the same. */
export function data(result: ToolResult): Record<string, any> {
  if (result.isError) throw new Error(`tool error: ${result.content[0]?.text}`)
  const text = result.content[0]?.text ?? ''
  if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(result.structuredContent)) {
    throw new Error('text and structuredContent differ')
  }
  return result.structuredContent as Record<string, any>
}

export function errorText(result: ToolResult): string {
  if (!result.isError) throw new Error(`expected an error result, got ${result.content[0]?.text}`)
  return result.content.map((c) => c.text).join('\n')
}
