/**
 * The `llm` agent type: a tool-calling loop against an OpenAI-compatible Chat Completions
 * endpoint, built only on AgentContext so it runs (and replays) through the same durable engine
 * as code agents.
 *
 * Journal layout of one run, in order:
 *   step 'tools'            the filtered tool list offered to the model
 *   step 'model'            one per model call: the assistant message and usage
 *   callTool(...)           journaled by the engine, one per tool call of that message
 *   ...                     ('model' / callTool repeat)
 *   setState({messages})    once, after the final answer
 * A replay over a complete journal therefore makes no model requests and no tool calls.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai'
import type {
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions'
import type { LlmAgentSpec } from '../manifests/schema.js'
import {
  defineAgent,
  type AgentContext,
  type AgentDefinition,
  type ToolInfo,
  type ToolResult,
} from './define.js'

export interface LlmAgentOptions {
  /**
   * Milliseconds to wait for the response headers of a model call (per attempt) and, once
   * streaming, for each next chunk. Default 120 000.
   */
  timeoutMs?: number
  /**
   * Client-side retries of a model call that failed before streaming began (connection errors,
   * 408/409/429/5xx). Default 1: a blip should not fail a run, while longer outages are the
   * engine's business (it owns the run's retry policy). Tokens are never emitted twice.
   */
  maxRetries?: number
}

export interface LlmAgentOutput {
  text: string
}

/** A tool call as the model made it (Chat Completions wire shape). */
export interface LlmToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

/** The assistant message of one model call, as journaled and as stored in `state.messages`. */
export interface LlmAssistantMessage {
  role: 'assistant'
  content: string | null
  tool_calls?: LlmToolCall[]
  refusal?: string
}

/** What a `model` step returns (and the journal replays): plain JSON. */
export interface LlmModelStep {
  message: LlmAssistantMessage
  finishReason: string | null
  usage: { promptTokens: number; completionTokens: number } | null
}

const DEFAULT_TIMEOUT_MS = 120_000
const DEFAULT_MAX_RETRIES = 1

/**
 * Builds the AgentDefinition of an `llm` agent. `apiKey` is the resolved secret of
 * `spec.api_key`; without one no Authorization header is sent (local model servers), and the
 * OPENAI_* environment variables of the gateway process are never consulted.
 */
export function llmAgent(
  name: string,
  spec: LlmAgentSpec,
  apiKey: string | undefined,
  options: LlmAgentOptions = {},
): AgentDefinition<unknown, LlmAgentOutput> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const label = `llm agent '${name}'`
  const host = safeHost(spec.base_url)
  const client = new OpenAI({
    baseURL: spec.base_url,
    // The client refuses to start without a credential; a placeholder plus an explicitly
    // omitted Authorization header gives a keyless client.
    apiKey: apiKey || 'unused',
    ...(apiKey ? {} : { defaultHeaders: { Authorization: null } }),
    // Pin everything the client would otherwise read from the gateway's environment.
    adminAPIKey: null,
    organization: null,
    project: null,
    webhookSecret: null,
    maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
    timeout: timeoutMs,
    // OPENAI_LOG=debug would print request bodies (tool results) to the console.
    logLevel: 'off',
  })

  /** Strips the key from anything that reaches an error message (upstreams sometimes echo it). */
  const scrub = (s: string): string => {
    const text = s.length > 500 ? `${s.slice(0, 500)}…` : s
    return apiKey ? text.split(apiKey).join('[redacted]') : text
  }

  const describeError = (err: unknown): Error => {
    if (err instanceof APIConnectionTimeoutError)
      return new Error(`${label}: the model request to ${host} timed out after ${timeoutMs} ms`)
    if (err instanceof APIConnectionError) {
      const cause = err.cause instanceof Error ? causeMessage(err.cause) : err.message
      return new Error(`${label}: could not reach the model endpoint ${host}: ${scrub(cause)}`)
    }
    if (err instanceof APIError) {
      // APIError's message is "{status} {upstream message}"; report the upstream part once.
      const upstream = scrub(upstreamMessage(err))
      return err.status !== undefined
        ? new Error(`${label}: the model request to ${host} failed with HTTP ${err.status}: ${upstream}`)
        : new Error(`${label}: the model stream from ${host} reported an error: ${upstream}`)
    }
    const msg = err instanceof Error ? causeMessage(err) : String(err)
    return new Error(`${label}: the model request to ${host} failed: ${scrub(msg)}`)
  }

  /** One streamed model call; runs inside `ctx.step('model')`, so only on first execution. */
  const callModel = async (
    ctx: AgentContext,
    messages: ChatCompletionMessageParam[],
    tools: ChatCompletionTool[],
  ): Promise<LlmModelStep> => {
    ctx.signal.throwIfAborted()
    const body: ChatCompletionCreateParamsStreaming = {
      model: spec.model,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      ...(tools.length ? { tools } : {}),
      ...(spec.temperature !== undefined ? { temperature: spec.temperature } : {}),
      ...(spec.max_tokens !== undefined ? { max_tokens: spec.max_tokens } : {}),
    }
    // The client's timeout ends when the headers arrive; `stalled` covers the gaps between chunks.
    const stalled = new AbortController()
    const signal = AbortSignal.any([ctx.signal, stalled.signal])
    let timer: ReturnType<typeof setTimeout> | undefined
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => stalled.abort(), timeoutMs)
    }

    let content = ''
    let refusal = ''
    let finishReason: string | null = null
    let usage: LlmModelStep['usage'] = null
    const calls: LlmToolCall[] = []
    try {
      const stream = await client.chat.completions.create(body, { signal })
      arm()
      for await (const chunk of stream) {
        arm()
        if (chunk.usage) {
          usage = {
            promptTokens: chunk.usage.prompt_tokens ?? 0,
            completionTokens: chunk.usage.completion_tokens ?? 0,
          }
        }
        for (const choice of chunk.choices ?? []) {
          if (choice.index !== undefined && choice.index !== 0) continue
          const delta = choice.delta ?? {}
          if (typeof delta.content === 'string' && delta.content) {
            content += delta.content
            ctx.emit({ type: 'token', text: delta.content })
          }
          if (typeof delta.refusal === 'string') refusal += delta.refusal
          for (const [pos, tc] of (delta.tool_calls ?? []).entries()) {
            const i = tc.index ?? pos
            const call = (calls[i] ??= { id: '', type: 'function', function: { name: '', arguments: '' } })
            if (tc.id) call.id = tc.id
            if (tc.function?.name) call.function.name = tc.function.name
            if (tc.function?.arguments) call.function.arguments += tc.function.arguments
          }
          if (choice.finish_reason) finishReason = choice.finish_reason
        }
      }
    } catch (err) {
      if (ctx.signal.aborted) ctx.signal.throwIfAborted()
      if (err instanceof APIUserAbortError && stalled.signal.aborted) throw stalledError()
      throw describeError(err)
    } finally {
      clearTimeout(timer)
    }
    // The client's stream iterator ends quietly when its request is aborted.
    ctx.signal.throwIfAborted()
    if (stalled.signal.aborted) throw stalledError()

    // Usage is recorded here, inside the step, so it counts real model calls exactly once:
    // a replay returns the journaled result without calling the model (nothing to pay for),
    // while a step re-executed after a crash did call the model again and is counted again.
    // Servers that ignore stream_options send no usage chunk; then nothing is recorded.
    if (usage) ctx.recordUsage({ model: spec.model, ...usage })
    if (finishReason === null)
      throw new Error(`${label}: the model stream from ${host} ended before the response was complete`)

    const toolCalls = calls
      .filter((c): c is LlmToolCall => c !== undefined)
      .map((c, i) => ({ ...c, id: c.id || `call_${i}` }))
    const message: LlmAssistantMessage = { role: 'assistant', content: content || null }
    if (toolCalls.length) message.tool_calls = toolCalls
    if (refusal) message.refusal = refusal
    return { message, finishReason, usage }

    function stalledError(): Error {
      return new Error(`${label}: the model stream from ${host} stalled for ${timeoutMs} ms`)
    }
  }

  const run = async (input: unknown, ctx: AgentContext): Promise<LlmAgentOutput> => {
    const history = readHistory(ctx.state, label)
    const user: ChatCompletionMessageParam = { role: 'user', content: userText(input) }
    const system: ChatCompletionMessageParam[] = spec.system ? [{ role: 'system', content: spec.system }] : []

    // Journaled so a replay (and every later model call) sees the tool list the run started
    // with, even if connectors or policy changed since: the journal must not diverge.
    const offered = await ctx.step('tools', async () => selectTools(await ctx.listTools(), spec.tools))
    const offeredNames = new Set(offered.map((t) => t.name))
    const tools: ChatCompletionTool[] = offered.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        parameters: t.inputSchema,
      },
    }))

    const fresh: ChatCompletionMessageParam[] = [user]
    for (let stepNo = 1; stepNo <= spec.max_steps; stepNo++) {
      ctx.signal.throwIfAborted()
      const messages = [...system, ...history, ...fresh]
      const { message } = await ctx.step('model', () => callModel(ctx, messages, tools))
      fresh.push(message as ChatCompletionMessageParam)

      const calls = message.tool_calls ?? []
      if (calls.length === 0) {
        await ctx.setState({ messages: [...history, ...fresh] })
        return { text: message.content ?? message.refusal ?? '' }
      }
      // The last permitted model call asked for tools: their results could never reach a model,
      // so they are not run (no side effects for nothing) and the run fails below.
      if (stepNo === spec.max_steps) break
      // Sequentially, in the model's order: the engine journals tool calls by position.
      for (const call of calls) fresh.push(await runToolCall(ctx, call, offeredNames))
    }
    // State is left untouched: the next run on the thread starts from the last complete exchange.
    throw new Error(`${label}: max_steps (${spec.max_steps}) was reached without a final answer`)
  }

  return defineAgent<unknown, LlmAgentOutput>({
    name,
    ...(spec.description !== undefined ? { description: spec.description } : {}),
    ...(spec.input !== undefined ? { input: spec.input } : {}),
    run,
  })
}

/**
 * Which tools the model is offered, from the run's tools and the manifest's `tools`:
 * - no `tools` field: every tool the run may call (the gateway's tenant/policy filtering has
 *   already been applied by `listTools`);
 * - `connectors` and `allow` select (a tool is kept when its exposed name starts with
 *   `{connector}__` or equals an allowed name); with neither, everything is selected;
 * - `deny` (exact exposed names) removes, and wins over `connectors` / `allow`.
 * Tool calls to anything not offered are answered with an error, never forwarded: the gateway
 * would allow a tool this filter excluded.
 */
export function selectTools(all: ToolInfo[], filter: LlmAgentSpec['tools']): ToolInfo[] {
  if (!filter) return all
  const { connectors, allow, deny } = filter
  const selecting = connectors !== undefined || allow !== undefined
  const prefixes = (connectors ?? []).map((c) => `${c}__`)
  const allowed = new Set(allow ?? [])
  const denied = new Set(deny ?? [])
  return all.filter(
    (t) =>
      !denied.has(t.name) &&
      (!selecting || allowed.has(t.name) || prefixes.some((p) => t.name.startsWith(p))),
  )
}

/**
 * The user message: the text of `"..."` or `{text: "..."}` (text as the only field), else
 * the input as JSON (so no field of a structured input is lost).
 */
export function userText(input: unknown): string {
  if (typeof input === 'string') return input
  if (
    typeof input === 'object' &&
    input !== null &&
    !Array.isArray(input) &&
    typeof (input as { text?: unknown }).text === 'string' &&
    Object.keys(input).length === 1
  )
    return (input as { text: string }).text
  return JSON.stringify(input ?? null)
}

/**
 * A tool result as the text of a tool message: the concatenated text items, else JSON of
 * structuredContent, else JSON of content.
 */
export function toolResultText(result: ToolResult): string {
  const content = Array.isArray(result.content) ? result.content : []
  const texts = content.flatMap((c) =>
    typeof c === 'object' && c !== null && (c as { type?: unknown }).type === 'text'
      ? typeof (c as { text?: unknown }).text === 'string'
        ? [(c as { text: string }).text]
        : []
      : [],
  )
  if (texts.length) return texts.join('\n')
  if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent)
  if (content.length) return JSON.stringify(content)
  return '(the tool returned no content)'
}

async function runToolCall(
  ctx: AgentContext,
  call: LlmToolCall,
  offered: Set<string>,
): Promise<ChatCompletionMessageParam> {
  const tool = call.function.name
  // Events carry the tool's name and an outcome only: arguments and results may hold secrets.
  ctx.emit({ type: 'tool_call', tool, callId: call.id })
  let status: 'ok' | 'error' | 'refused' | 'invalid_arguments' | 'unavailable'
  let content: string
  const args = parseArguments(call.function.arguments)
  if (!offered.has(tool)) {
    status = 'unavailable'
    content = `Error: there is no tool named "${tool}" available to you. Use only the tools you were given.`
  } else if (!args.ok) {
    status = 'invalid_arguments'
    content = `Error: the arguments for tool "${tool}" were not valid JSON (${args.reason}). Call the tool again with a JSON object as its arguments.`
  } else {
    try {
      const result = await ctx.callTool(tool, args.value)
      status = result.isError ? 'error' : 'ok'
      const text = toolResultText(result)
      content = result.isError ? `Error: the tool reported a failure: ${text}` : text
    } catch (err) {
      // A cancelled run must stop, not tell the model about it.
      ctx.signal.throwIfAborted()
      status = 'refused'
      const msg = err instanceof Error ? err.message : String(err)
      content = `Error: the call to tool "${tool}" was refused: ${msg}`
    }
  }
  ctx.emit({ type: 'tool_result', tool, callId: call.id, status })
  return { role: 'tool', tool_call_id: call.id, content }
}

type ParsedArgs = { ok: true; value: Record<string, unknown> } | { ok: false; reason: string }

function parseArguments(raw: string): ParsedArgs {
  // Some servers send "" for a call without arguments.
  if (!raw.trim()) return { ok: true, value: {} }
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : 'unparseable' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, reason: 'expected a JSON object' }
  return { ok: true, value: value as Record<string, unknown> }
}

function readHistory(state: Readonly<Record<string, unknown>>, label: string): ChatCompletionMessageParam[] {
  const messages = state.messages
  if (messages === undefined) return []
  // Refuse rather than overwrite: another agent on this thread may own a `messages` field.
  if (!Array.isArray(messages)) throw new Error(`${label}: the thread state's "messages" is not an array`)
  return messages as ChatCompletionMessageParam[]
}

function upstreamMessage(err: APIError): string {
  const e = err.error as { message?: unknown } | undefined
  if (e && typeof e.message === 'string') return e.message
  const prefix = err.status !== undefined ? `${err.status} ` : ''
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message
}

/** "fetch failed" hides the interesting part (ECONNREFUSED, ...) in its cause. */
function causeMessage(err: Error): string {
  const cause = err.cause
  if (cause instanceof Error && cause.message && cause.message !== err.message)
    return `${err.message} (${cause.message})`
  return err.message
}

function safeHost(baseUrl: string): string {
  try {
    return new URL(baseUrl).host
  } catch {
    return 'the model endpoint'
  }
}
