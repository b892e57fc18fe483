import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import { TERMINAL_STATUSES, type RunRecord, type RunStatus } from '../store/runs.js'
import type { JsonObject } from '../upstream/rpc.js'
import { askForInterrupt, resultOf, waitingResult } from './mcp-tools.js'
import type { RunService } from './service.js'

/** The `_meta` key that ties a message to a task (MCP 2025-11-25 tasks). */
export const RELATED_TASK_META = 'io.modelcontextprotocol/related-task'

/** How often a task's client should poll tasks/get. */
const POLL_INTERVAL_MS = 1000

type TaskStatus = 'working' | 'input_required' | 'completed' | 'failed' | 'cancelled'

const STATUS: Record<RunStatus, TaskStatus> = {
  queued: 'working',
  running: 'working',
  interrupted: 'input_required',
  succeeded: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
}

/** A run as an MCP task: the task id is the run id, so the run API and the task are one thing. */
export function taskOf(run: RunRecord): JsonObject {
  const status = STATUS[run.status]
  const message =
    run.status === 'interrupted'
      ? `waiting for input: ${JSON.stringify(run.interrupt ?? null)}`
      : run.error
        ? run.error.message
        : `run ${run.status}`
  return {
    taskId: run.id,
    status,
    statusMessage: message,
    createdAt: run.createdAt,
    lastUpdatedAt: run.updatedAt,
    // Runs are kept until their thread is deleted: no expiry.
    ttl: null,
    pollInterval: POLL_INTERVAL_MS,
  }
}

/** Invalid params: the spec's answer for an unknown task id (also another owner's: no probing). */
class TaskError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * MCP tasks (2025-11-25, experimental) over durable runs: `tools/call` of an agent with a `task`
 * param starts a run and answers with the task at once; tasks/get, tasks/result, tasks/cancel and
 * tasks/list read and drive the run. Scoping is the run store's: the caller's own runs (admins: the
 * tenant's).
 */
export class McpTasks {
  constructor(private readonly runs: RunService) {}

  private async run(ctx: CallContext, taskId: unknown): Promise<RunRecord> {
    if (typeof taskId !== 'string' || !taskId) throw new TaskError(-32602, 'taskId is required')
    try {
      return await this.runs.get(ctx, taskId)
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'not_found')
        throw new TaskError(-32602, `unknown task ${taskId}`)
      throw err
    }
  }

  async get(ctx: CallContext, taskId: unknown): Promise<JsonObject> {
    return taskOf(await this.run(ctx, taskId))
  }

  async cancel(ctx: CallContext, taskId: unknown): Promise<JsonObject> {
    const run = await this.run(ctx, taskId)
    if (TERMINAL_STATUSES.has(run.status))
      throw new TaskError(-32602, `task ${run.id} is already ${STATUS[run.status]}`)
    await this.runs.cancel(ctx, run.id, 'cancelled through tasks/cancel')
    const done = await this.runs.wait(ctx, run.id, 5000)
    return taskOf(done.status === 'running' ? { ...done, status: 'cancelled' } : done)
  }

  async list(ctx: CallContext, cursor: unknown): Promise<JsonObject> {
    const page = await this.runs.list(ctx, {
      limit: 50,
      ...(typeof cursor === 'string' && cursor ? { before: cursor } : {}),
    })
    return { tasks: page.items.map(taskOf), ...(page.next ? { nextCursor: page.next } : {}) }
  }

  /**
   * Blocks until the run ends and answers what the tool call would have. An interrupt on the way
   * becomes a form elicitation tied to the task when the client can answer one.
   */
  async result(
    ctx: CallContext,
    taskId: unknown,
    ask: ((method: string, params: JsonObject) => Promise<unknown>) | undefined,
    signal: AbortSignal,
  ): Promise<JsonObject> {
    let run = await this.run(ctx, taskId)
    const related = { [RELATED_TASK_META]: { taskId: run.id } }
    for (;;) {
      run = await this.runs.wait(ctx, run.id, 3_600_000, signal)
      if (TERMINAL_STATUSES.has(run.status)) break
      if (signal.aborted) throw new TaskError(-32800, 'request cancelled')
      if (run.status !== 'interrupted') continue
      const answer = ask
        ? await askForInterrupt((m, p) => ask(m, { ...p, _meta: related }), run.interrupt)
        : undefined
      if (answer === undefined) return withMeta(waitingResult(run, run.interrupt), related)
      await this.runs.resume(ctx, run.id, answer.value)
    }
    return withMeta(resultOf(run), related)
  }
}

function withMeta(result: JsonObject, meta: JsonObject): JsonObject {
  return { ...result, _meta: { ...((result._meta as JsonObject | undefined) ?? {}), ...meta } }
}

export { TaskError }
