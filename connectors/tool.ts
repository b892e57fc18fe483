import { z } from 'zod'
import { UpstreamAuthError, type BuiltinTool, type BuiltinToolContext, type ToolResult } from './types.js'

/** How a connector turns a failed API call into a result, or rethrows (auth problems, cancellation). */
export type FailureMapper = (err: unknown, ctx: BuiltinToolContext) => ToolResult

export interface ToolSpec<S extends z.ZodObject> {
  name: string
  title: string
  description: string
  input: S
  annotations: NonNullable<BuiltinTool['annotations']>
  /** Does the work and returns the structured projection the caller sees. */
  call(args: z.output<S>, ctx: BuiltinToolContext): Promise<Record<string, unknown>>
}

/**
 * Builds a tool from a zod input schema: the advertised JSON Schema and the validation in `run`
 * come from the same schema, so they cannot drift.
 */
export function defineTool<S extends z.ZodObject>(spec: ToolSpec<S>, onFailure: FailureMapper): BuiltinTool {
  const inputSchema = z.toJSONSchema(spec.input, { io: 'input' }) as Record<string, unknown>
  delete inputSchema.$schema // MCP defaults to 2020-12, which is what zod emits
  return {
    name: spec.name,
    title: spec.title,
    description: spec.description,
    inputSchema,
    annotations: { openWorldHint: true, ...spec.annotations },
    async run(args, ctx) {
      const parsed = spec.input.safeParse(args ?? {})
      if (!parsed.success) return invalidArguments(spec.name, parsed.error)
      ctx.signal?.throwIfAborted()
      // Without a token the clients would call anonymously (GitHub answers public data): refuse instead.
      if (typeof ctx.token !== 'string' || ctx.token.trim() === '') {
        throw new UpstreamAuthError(`No upstream token was given for ${spec.name}`, 401)
      }
      try {
        return jsonResult(await spec.call(parsed.data, ctx))
      } catch (err) {
        if (ctx.signal?.aborted) throw ctx.signal.reason
        return scrubbed(() => onFailure(err, ctx), ctx.token)
      }
    },
  }
}

/** A successful result: the projection as structured content and as JSON text. */
export function jsonResult(data: Record<string, unknown>): ToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(data) }], structuredContent: data }
}

export function errorResult(text: string): ToolResult {
  return { content: [{ type: 'text', text }], isError: true }
}

/** Names every offending field so a model can correct its call. */
export function invalidArguments(tool: string, error: z.ZodError): ToolResult {
  const problems = error.issues.map((i) => {
    const at = i.path.length > 0 ? i.path.join('.') : 'arguments'
    return `${at}: ${i.message}`
  })
  return errorResult(`Invalid arguments for ${tool}: ${problems.join('; ')}`)
}

/** The failure mapper's result or auth error, with the token cut out of any upstream words in it. */
function scrubbed(map: () => ToolResult, token: string): ToolResult {
  let result: ToolResult
  try {
    result = map()
  } catch (err) {
    if (err instanceof UpstreamAuthError && err.message.includes(token)) {
      throw new UpstreamAuthError(scrub(err.message, token), err.status, err.scopes)
    }
    throw err
  }
  return { ...result, content: result.content.map((c) => ({ ...c, text: scrub(c.text, token) })) }
}

/** Belt and braces: an upstream message should never echo the token, but if it does, it is cut out. */
function scrub(text: string, token: string): string {
  return token.length >= 4 ? text.split(token).join('[redacted]') : text
}

/** Seconds until an upstream says to retry, from `Retry-After` (seconds or HTTP date). */
export function retryAfterSeconds(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const secs = Number(value)
  if (Number.isFinite(secs)) return Math.max(0, Math.ceil(secs))
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000))
}
