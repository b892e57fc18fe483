import { GatewayError } from '../errors.js'
import { AGENT_PREFIX, type ServerSpec } from '../manifests/schema.js'
import type { ToolCall } from '../pipeline/types.js'
import type { ExposedTool, ToolHost } from '../registry.js'
import type { RunEvent, RunRecord } from '../store/runs.js'
import { UpstreamRpcError, type JsonObject } from '../upstream/rpc.js'
import type { AgentCatalog } from './agents.js'
import type { RunService } from './service.js'
import { taskOf } from './mcp-tasks.js'

/** The default form an interrupt becomes when its payload brings no schema of its own. */
const ANSWER_SCHEMA = {
  type: 'object',
  properties: { value: { type: 'string', title: 'Answer' } },
  required: ['value'],
}

function hostFor(tenant: string): ToolHost {
  return {
    name: AGENT_PREFIX,
    tenant,
    request: () => Promise.reject(new UpstreamRpcError(-32601, 'agents are run by the gateway, not relayed')),
  }
}

function text(t: string, isError = false): JsonObject {
  return { content: [{ type: 'text', text: t }], ...(isError ? { isError: true } : {}) }
}

/** The tool result of a finished run: output as text, and as structured content when it is an object. */
export function resultOf(run: RunRecord): JsonObject {
  if (run.status === 'succeeded') {
    const out = run.output
    const asText =
      out && typeof out === 'object' && typeof (out as { text?: unknown }).text === 'string'
        ? (out as { text: string }).text
        : JSON.stringify(out ?? null)
    return {
      content: [{ type: 'text', text: asText }],
      ...(out && typeof out === 'object' && !Array.isArray(out)
        ? { structuredContent: out as JsonObject }
        : {}),
      _meta: { 'io.gatehouse/run': { id: run.id, status: run.status } },
    }
  }
  return {
    ...text(`run ${run.id} of agent ${run.agent} ${run.status}: ${run.error?.message ?? 'no detail'}`, true),
    _meta: { 'io.gatehouse/run': { id: run.id, status: run.status } },
  }
}

/** What a client that cannot answer an interrupt is told: the run waits, and how to resume it. */
export function waitingResult(run: RunRecord, payload: unknown): JsonObject {
  return {
    content: [
      {
        type: 'text',
        text:
          `Run ${run.id} of agent ${run.agent} is waiting for input: ${JSON.stringify(payload)}. ` +
          `Answer it with POST /v1/runs/${run.id}/resume {"value": …}; the run continues durably.`,
      },
    ],
    structuredContent: { run_id: run.id, status: 'interrupted', interrupt: payload as JsonObject },
    _meta: { 'io.gatehouse/run': { id: run.id, status: 'interrupted' } },
  }
}

/**
 * Agents as MCP tools: `agents__{name}` starts a run for the caller and follows it. Run events
 * become progress notifications; an interrupt becomes a form elicitation when the client can
 * answer one (2025 sessions on the stream, 2026 clients through input_required rounds), else a
 * result that says how to resume. A cancelled MCP call cancels the run.
 */
export class AgentTools {
  constructor(
    private readonly catalog: AgentCatalog,
    private readonly runs: RunService,
  ) {}

  /** The agents a tenant (or one virtual server) exposes, as tools. */
  async list(tenant: string, server: ServerSpec | undefined): Promise<ExposedTool[]> {
    const agents = this.catalog.list(tenant).filter((a) => !server || (server.agents ?? []).includes(a.name))
    const host = hostFor(tenant)
    return Promise.all(
      agents.map(async (a) => {
        const exposed = `${AGENT_PREFIX}__${a.name}`
        const d = await a
          .describe()
          .catch(() => ({ description: undefined, inputSchema: { type: 'object' } }))
        return {
          exposed,
          connection: host,
          name: a.name,
          def: {
            name: exposed,
            execution: { taskSupport: 'optional' },
            description: d.description ?? `Runs the ${a.name} agent (${a.spec.type})`,
            inputSchema: d.inputSchema as JsonObject,
          },
          invoke: (call: ToolCall) => this.invoke(a.name, call),
        }
      }),
    )
  }

  private async invoke(agent: string, call: ToolCall): Promise<JsonObject> {
    const { ctx, relay } = call
    let run: RunRecord
    try {
      run = await this.runs.create(ctx, { agent, input: call.args })
      // A task-augmented call (MCP tasks): answer with the task at once; tasks/* follow the run.
      if (call.task) return { content: [], task: taskOf(run) }
    } catch (err) {
      // Bad input is the model's to fix: a tool error, not a protocol error.
      if (err instanceof GatewayError && err.code === 'invalid_params') return text(err.message, true)
      throw err
    }
    const id = run.id
    const onCancel = () =>
      void this.runs.cancel(ctx, id, 'the MCP caller cancelled the tool call').catch(() => undefined)
    call.signal?.addEventListener('abort', onCancel, { once: true })
    let after = 0
    let progress = 0
    try {
      for (;;) {
        // One round: follow events until the end, the caller cancels, or an interrupt.
        const round = new AbortController()
        const stop = () => round.abort()
        call.signal?.addEventListener('abort', stop, { once: true })
        let waiting: { payload: unknown } | undefined
        const ended = await this.runs
          .follow(
            ctx,
            id,
            after,
            (e: RunEvent) => {
              after = e.seq
              if (e.type === 'interrupt') {
                waiting = { payload: (e.data as { payload?: unknown }).payload }
                round.abort()
                return
              }
              progress += 1
              relay?.onProgress?.({ progress, message: summary(e) })
            },
            round.signal,
          )
          .finally(() => call.signal?.removeEventListener('abort', stop))
        if (ended || call.signal?.aborted || !waiting) break
        const answer =
          relay?.onRequest && call.canElicit
            ? await askForInterrupt(relay.onRequest, waiting.payload)
            : undefined
        const current = await this.runs.get(ctx, id)
        if (answer === undefined || current.status !== 'interrupted')
          return waitingResult(current, waiting.payload)
        await this.runs.resume(ctx, id, answer.value)
      }
    } finally {
      call.signal?.removeEventListener('abort', onCancel)
    }
    return resultOf(await this.runs.get(ctx, id))
  }
}

/** A form elicitation for an interrupt; undefined when the client cannot or will not answer. */
export async function askForInterrupt(
  onRequest: (method: string, params: JsonObject | undefined) => Promise<unknown>,
  payload: unknown,
): Promise<{ value: unknown } | undefined> {
  const p = (payload && typeof payload === 'object' ? payload : {}) as Record<string, unknown>
  const schema =
    p.schema && typeof p.schema === 'object' ? (p.schema as JsonObject) : (ANSWER_SCHEMA as JsonObject)
  const message =
    typeof p.question === 'string'
      ? p.question
      : typeof p.message === 'string'
        ? p.message
        : `The agent asks: ${JSON.stringify(payload)}`
  try {
    const res = (await onRequest('elicitation/create', {
      mode: 'form',
      message,
      requestedSchema: schema,
    })) as {
      action?: string
      content?: Record<string, unknown>
    }
    if (res?.action !== 'accept' || !res.content) return undefined
    return { value: p.schema ? res.content : res.content.value }
  } catch {
    // The client does not support elicitation (or the request failed): fall back to resume by API.
    return undefined
  }
}

/** A short progress message for a run event. */
function summary(e: RunEvent): string {
  const d = e.data as Record<string, unknown> | null
  if (e.type === 'status') return `run ${String(d?.status)}`
  if (e.type === 'token' && typeof d?.text === 'string') return d.text
  return e.type
}
