/**
 * The A2A request handler (the SDK's `A2ARequestHandler`) over the Run API: a task is a run, its
 * contextId the run's thread. Nothing is kept in memory: every read goes to RunService and the
 * store, streams follow the run's persisted event log, so any gateway process serves any task.
 * The SDK's JSON-RPC transport handlers (1.0 and 0.3) call it; the HTTP+JSON binding calls it
 * directly (bindings.ts).
 */
import { randomUUID } from 'node:crypto'
import {
  AgentCard,
  Part,
  Role,
  StreamResponse,
  Task,
  TaskPushNotificationConfig,
  taskStateToJSON,
  type CancelTaskRequest,
  type DeleteTaskPushNotificationConfigRequest,
  type GetExtendedAgentCardRequest,
  type GetTaskPushNotificationConfigRequest,
  type GetTaskRequest,
  type ListTaskPushNotificationConfigsRequest,
  type ListTaskPushNotificationConfigsResponse,
  type ListTasksRequest,
  type ListTasksResponse,
  type Message,
  type SendMessageRequest,
  type SubscribeToTaskRequest,
} from '@a2a-js/sdk'
import {
  A2AError,
  ContentTypeNotSupportedError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from '@a2a-js/sdk/errors'
import type { A2ARequestHandler, ServerCallContext } from '@a2a-js/sdk/server'
import { hasRole, type CallContext, type Role as GatewayRole } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { LoadedAgent } from '../runs/agents.js'
import type { RunService } from '../runs/service.js'
import type { RunStateMatch } from '../store/a2a.js'
import { TERMINAL_STATUSES, type RunRecord } from '../store/runs.js'
import type { Store } from '../store/types.js'
import type { AuditWriter } from '../telemetry/audit.js'
import type { MasterKey } from '../vault/master-key.js'
import { cardOf } from './card.js'
import {
  answerOf,
  AUTH_CODES,
  inputOf,
  parseState,
  REJECTED_CODES,
  SETTLED_STATES,
  stateOfRun,
  TaskFold,
  type A2aState,
  type Derived,
  type PartJson,
  type TaskJson,
} from './convert.js'
import {
  MAX_CONFIGS_PER_TASK,
  preparePushConfig,
  PushConfigError,
  pushConfigView,
  type PushConfigInput,
} from './push.js'

/** One A2A request as the handler sees it; carried in the SDK's ServerCallContext. */
export interface A2aCall {
  ctx: CallContext
  agent: LoadedAgent
  /** `http(s)://host[:port]` the caller reached the gateway at (for cards). */
  baseUrl: string
  /** OIDC issuers to advertise in cards. */
  oidcIssuers?: readonly string[]
  /** The protocol version of the binding in use: push configs created now deliver in it. */
  version: '1.0' | '0.3'
  /** Aborts when the client goes away or the gateway shuts down. */
  signal: AbortSignal
  /** Set when the outcome is the transport's business (403, 429): the binding answers with that status. */
  escape?: GatewayError
}

const CALL_KEY = 'gatehouse.a2a.call'

export function callState(call: A2aCall): Map<string, unknown> {
  return new Map([[CALL_KEY, call]])
}

function callOf(sctx: ServerCallContext): A2aCall {
  const call = sctx.state.get(CALL_KEY) as A2aCall | undefined
  if (!call) throw new Error('A2A call context missing')
  return call
}

/** Throws forbidden unless the caller has one of the roles (operators always may). */
export function requireRoles(ctx: CallContext, ...roles: GatewayRole[]): void {
  if (!ctx.operator && !hasRole(ctx, ...roles))
    throw new GatewayError('forbidden', `this needs one of the roles: ${roles.join(', ')}`)
}

/** Roles that may start a task, answer one, and cancel or configure one. */
export const START_ROLES: GatewayRole[] = ['admin', 'member']
export const ANSWER_ROLES: GatewayRole[] = ['admin', 'member', 'approver']
export const WRITE_ROLES: GatewayRole[] = ['admin', 'member']

/** Media types this gateway answers in; acceptedOutputModes must allow one of them. */
const OUTPUT_MODES = new Set([
  'application/json',
  'text/plain',
  'application/*',
  'text/*',
  '*/*',
  'json',
  'text',
  'data',
])
const CONTEXT_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** A capability card for the SDK's transport checks (streaming); the real cards are per agent (card.ts). */
const CAPABILITIES = AgentCard.fromJSON({
  name: 'gatehouse',
  description: 'Gatehouse A2A endpoint',
  version: '1.0.0',
  supportedInterfaces: [],
  capabilities: { streaming: true, pushNotifications: true, extendedAgentCard: true },
  defaultInputModes: ['text/plain', 'application/json'],
  defaultOutputModes: ['application/json', 'text/plain'],
  skills: [],
})

export interface A2aHandlerOptions {
  runs: RunService
  store: Store
  masterKey: MasterKey
  masterKeys: readonly MasterKey[]
  /** The SSRF guard for push targets: throws a GatewayError naming the problem. */
  checkPushUrl(url: string): void
  audit: AuditWriter
  logger: Logger
  /** Set when the gateway shuts down: open streams end. */
  closing: AbortSignal
  /** Longest a blocking SendMessage waits for the task to settle before answering with its current state. */
  blockingWaitMs: number
  /** How long CancelTask waits for a running task to stop. */
  cancelWaitMs: number
  /** A push config was written: look for deliveries now. */
  pushWritten?(): void
}

/** ListTasks status filter → run states (the inverse of convert.ts). */
function matchesFor(state: A2aState): RunStateMatch[] {
  switch (state) {
    case 'submitted':
      return [{ status: 'queued' }]
    case 'working':
      return [{ status: 'running' }]
    case 'input-required':
      return [{ status: 'interrupted', interruptTypeNotIn: AUTH_CODES }]
    case 'auth-required':
      return [
        { status: 'interrupted', interruptTypeIn: AUTH_CODES },
        { status: 'failed', errorCodeIn: AUTH_CODES },
      ]
    case 'completed':
      return [{ status: 'succeeded' }]
    case 'canceled':
      return [{ status: 'cancelled' }]
    case 'rejected':
      return [{ status: 'failed', errorCodeIn: REJECTED_CODES }]
    case 'failed':
      return [{ status: 'failed', errorCodeNotIn: [...REJECTED_CODES, ...AUTH_CODES] }]
  }
}

export class A2aHandler implements A2ARequestHandler {
  constructor(private readonly o: A2aHandlerOptions) {}

  // ---- cards ---------------------------------------------------------------------------------

  async getAgentCard(): Promise<AgentCard> {
    return CAPABILITIES
  }

  async getAuthenticatedExtendedAgentCard(
    _params: GetExtendedAgentCardRequest,
    sctx: ServerCallContext,
  ): Promise<AgentCard> {
    const call = callOf(sctx)
    return this.guard(call, async () =>
      AgentCard.fromJSON(
        await cardOf(call.agent, {
          baseUrl: call.baseUrl,
          extended: true,
          ...(call.oidcIssuers ? { oidcIssuers: call.oidcIssuers } : {}),
        }),
      ),
    )
  }

  // ---- messages ------------------------------------------------------------------------------

  async sendMessage(params: SendMessageRequest, sctx: ServerCallContext): Promise<Message | Task> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      let run = await this.start(call, params)
      const historyLength = params.configuration?.historyLength
      if (!params.configuration?.returnImmediately && !TERMINAL_STATUSES.has(run.status))
        run = await this.o.runs.wait(call.ctx, run.id, this.o.blockingWaitMs, call.signal)
      return Task.fromJSON(await this.taskOf(call.ctx, run, { historyLength }))
    })
  }

  async *sendMessageStream(
    params: SendMessageRequest,
    sctx: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const call = callOf(sctx)
    const fold = await this.guard(call, async () => this.foldOf(call.ctx, await this.start(call, params)))
    try {
      yield* this.stream(call, fold, params.configuration?.historyLength)
    } catch (err) {
      this.fail(call, err)
    }
  }

  /**
   * Starts a task (or answers one): validates the message, finds a message id already handled
   * (a client re-sending after a lost answer gets the same task), resumes an interrupted run with
   * the message as the answer, or creates a run on the message's context (a thread; a new one
   * when there is none).
   */
  private async start(call: A2aCall, params: SendMessageRequest): Promise<RunRecord> {
    const { ctx, agent } = call
    this.checkTenant(call, params.tenant)
    const msg = params.message
    if (!msg) throw new RequestMalformedError('message is required')
    if (!msg.messageId) throw new RequestMalformedError('message.messageId is required')
    if (msg.role === Role.ROLE_AGENT) throw new RequestMalformedError('message.role must be ROLE_USER')
    if (!msg.parts.length) throw new RequestMalformedError('message.parts must hold at least one part')
    const parts = msg.parts.map((p) => Part.toJSON(p) as PartJson)
    if (parts.some((p) => p.text === undefined && p.data === undefined && !p.url && p.raw === undefined))
      throw new RequestMalformedError('every part needs text, data, url or raw content')
    const config = params.configuration
    const modes = (config?.acceptedOutputModes ?? []).map((m) => m.split(';')[0]!.trim().toLowerCase())
    if (modes.length && !modes.some((m) => OUTPUT_MODES.has(m)))
      throw new ContentTypeNotSupportedError(
        `agent ${agent.name} answers in application/json or text/plain; acceptedOutputModes (${modes.join(', ')}) allows neither`,
      )
    if (config?.historyLength !== undefined && config.historyLength < 0)
      throw new RequestMalformedError('historyLength must not be negative')
    const pushInput = config?.taskPushNotificationConfig
    const push = pushInput?.url ? this.preparePush(pushInput) : undefined

    const seen = await this.o.store.a2a.taskOfMessage(ctx, msg.messageId)
    if (seen) {
      const run = await this.o.store.runs.get(ctx, seen)
      if (run && run.agent === agent.name) return run
    }
    let run: RunRecord
    if (msg.taskId) {
      const current = await this.task(call, msg.taskId)
      if (msg.contextId && msg.contextId !== (current.threadId ?? ''))
        throw new RequestMalformedError(`contextId ${msg.contextId} is not the context of task ${current.id}`)
      const state = stateOfRun(current)
      if (TERMINAL_STATUSES.has(current.status))
        throw new UnsupportedOperationError(
          `task ${current.id} is ${state} and accepts no more messages; send one without taskId (with the same contextId to continue the conversation)`,
        )
      if (current.status !== 'interrupted')
        throw new UnsupportedOperationError(
          `task ${current.id} is ${state}: it takes a message only while it waits for input (input-required)`,
        )
      requireRoles(ctx, ...ANSWER_ROLES)
      run = await this.o.runs.resume(ctx, current.id, answerOf(parts))
    } else {
      requireRoles(ctx, ...START_ROLES)
      const threadId = await this.contextFor(call, msg.contextId)
      run = await this.o.runs.create(ctx, { agent: agent.name, input: inputOf(parts), threadId })
    }
    await this.o.store.a2a.rememberMessage(ctx, msg.messageId, run.id)
    if (push) await this.putPush(call, run, push)
    return run
  }

  /** The thread a new task runs on: the message's context, created when it is new; else a new one. */
  private async contextFor(call: A2aCall, contextId: string): Promise<string> {
    const { ctx, agent } = call
    const store = this.o.store.runs
    const metadata = { source: 'a2a', agent: agent.name }
    if (!contextId) {
      const id = randomUUID()
      await store.createThread(ctx, { id, metadata })
      return id
    }
    if (await store.getThread(ctx, contextId)) return contextId
    if (!CONTEXT_ID.test(contextId))
      throw new RequestMalformedError(
        'contextId is unknown here and cannot name a new context: use 1–128 characters of [A-Za-z0-9._:-], or omit it',
      )
    try {
      await store.createThread(ctx, { id: contextId, metadata })
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'conflict')
        throw new RequestMalformedError(
          `contextId ${contextId} cannot be used; omit it to start a new context`,
        )
      throw err
    }
    return contextId
  }

  // ---- tasks ---------------------------------------------------------------------------------

  async getTask(params: GetTaskRequest, sctx: ServerCallContext): Promise<Task> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      if (params.historyLength !== undefined && params.historyLength < 0)
        throw new RequestMalformedError('historyLength must not be negative')
      const run = await this.task(call, params.id)
      return Task.fromJSON(await this.taskOf(call.ctx, run, { historyLength: params.historyLength }))
    })
  }

  async listTasks(params: ListTasksRequest, sctx: ServerCallContext): Promise<ListTasksResponse> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const pageSize = params.pageSize ?? 50
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100)
        throw new RequestMalformedError('pageSize must be an integer from 1 to 100')
      if (params.historyLength !== undefined && params.historyLength < 0)
        throw new RequestMalformedError('historyLength must not be negative')
      let states: RunStateMatch[] | undefined
      if (params.status) {
        const state = parseState(taskStateToJSON(params.status))
        if (!state) throw new RequestMalformedError('status is not a task state')
        states = matchesFor(state)
      }
      let updatedAfter: string | undefined
      if (params.statusTimestampAfter) {
        const t = Date.parse(params.statusTimestampAfter)
        if (Number.isNaN(t))
          throw new RequestMalformedError('statusTimestampAfter must be an ISO 8601 timestamp')
        updatedAfter = new Date(t).toISOString()
      }
      const page = await this.o.store.a2a.listTaskIds(call.ctx, {
        agent: call.agent.name,
        ...(params.contextId ? { threadId: params.contextId } : {}),
        ...(states ? { states } : {}),
        ...(updatedAfter ? { updatedAfter } : {}),
        pageSize,
        ...(params.pageToken ? { pageToken: params.pageToken } : {}),
      })
      const tasks: Task[] = []
      for (const id of page.ids) {
        const run = await this.o.store.runs.get(call.ctx, id)
        if (!run) continue
        const json = await this.taskOf(call.ctx, run, {
          historyLength: params.historyLength,
          includeArtifacts: params.includeArtifacts === true,
        })
        tasks.push(Task.fromJSON(json))
      }
      const out: ListTasksResponse = {
        tasks,
        nextPageToken: page.next ?? '',
        pageSize,
        totalSize: page.total,
      }
      return out
    })
  }

  async cancelTask(params: CancelTaskRequest, sctx: ServerCallContext): Promise<Task> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.id)
      requireRoles(call.ctx, ...WRITE_ROLES)
      const notCancelable = () =>
        new TaskNotCancelableError(`task ${run.id} is already ${stateOfRun(run)} and cannot be canceled`)
      if (TERMINAL_STATUSES.has(run.status)) throw notCancelable()
      try {
        await this.o.runs.cancel(call.ctx, run.id, 'cancelled over A2A (CancelTask)')
      } catch (err) {
        if (err instanceof GatewayError && err.code === 'conflict') throw notCancelable()
        throw err
      }
      const after = await this.o.runs.wait(call.ctx, run.id, this.o.cancelWaitMs, call.signal)
      return Task.fromJSON(await this.taskOf(call.ctx, after, {}))
    })
  }

  async *resubscribe(
    params: SubscribeToTaskRequest,
    sctx: ServerCallContext,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const call = callOf(sctx)
    const fold = await this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.id)
      if (TERMINAL_STATUSES.has(run.status))
        throw new UnsupportedOperationError(
          `task ${run.id} is ${stateOfRun(run)}: a task that is over has nothing to subscribe to; GetTask returns its result`,
        )
      return this.foldOf(call.ctx, run)
    })
    try {
      yield* this.stream(call, fold)
    } catch (err) {
      this.fail(call, err)
    }
  }

  // ---- push notification configs -------------------------------------------------------------

  async createTaskPushNotificationConfig(
    params: TaskPushNotificationConfig,
    sctx: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.taskId)
      requireRoles(call.ctx, ...WRITE_ROLES)
      const prepared = this.preparePush(params)
      const rec = await this.putPush(call, run, prepared)
      return TaskPushNotificationConfig.fromJSON(pushConfigView(rec, this.o.masterKeys))
    })
  }

  async getTaskPushNotificationConfig(
    params: GetTaskPushNotificationConfigRequest,
    sctx: ServerCallContext,
  ): Promise<TaskPushNotificationConfig> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.taskId)
      const rec = await this.o.store.a2a.getPushConfig(call.ctx, run.id, params.id)
      if (!rec)
        throw new TaskNotFoundError(`push notification config ${params.id} of task ${run.id} not found`)
      return TaskPushNotificationConfig.fromJSON(pushConfigView(rec, this.o.masterKeys))
    })
  }

  async listTaskPushNotificationConfigs(
    params: ListTaskPushNotificationConfigsRequest,
    sctx: ServerCallContext,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.taskId)
      const configs = await this.o.store.a2a.listPushConfigs(call.ctx, run.id)
      const out: ListTaskPushNotificationConfigsResponse = {
        configs: configs.map((c) =>
          TaskPushNotificationConfig.fromJSON(pushConfigView(c, this.o.masterKeys)),
        ),
        nextPageToken: '',
      }
      return out
    })
  }

  async deleteTaskPushNotificationConfig(
    params: DeleteTaskPushNotificationConfigRequest,
    sctx: ServerCallContext,
  ): Promise<void> {
    const call = callOf(sctx)
    return this.guard(call, async () => {
      this.checkTenant(call, params.tenant)
      const run = await this.task(call, params.taskId)
      requireRoles(call.ctx, ...WRITE_ROLES)
      // Idempotent: deleting a config that is already gone is not an error.
      if (await this.o.store.a2a.deletePushConfig(call.ctx, run.id, params.id))
        void this.o.audit.action(call.ctx, 'a2a.push_config.delete', `${run.agent}/${run.id}/${params.id}`)
    })
  }

  private preparePush(input: {
    id?: string
    url: string
    token?: string
    authentication?: { scheme: string; credentials: string } | undefined
  }): ReturnType<typeof preparePushConfig> {
    const config: PushConfigInput = {
      url: input.url,
      ...(input.id ? { id: input.id } : {}),
      ...(input.token ? { token: input.token } : {}),
      ...(input.authentication ? { authentication: input.authentication } : {}),
    }
    return preparePushConfig(
      config,
      (url) => {
        try {
          this.o.checkPushUrl(url)
        } catch (err) {
          throw new PushConfigError(`push notification url refused: ${(err as Error).message}`)
        }
      },
      this.o.masterKey,
    )
  }

  private async putPush(call: A2aCall, run: RunRecord, prepared: ReturnType<typeof preparePushConfig>) {
    const a2a = this.o.store.a2a
    const existing = await a2a.listPushConfigs(call.ctx, run.id)
    if (existing.length >= MAX_CONFIGS_PER_TASK && !existing.some((c) => c.id === prepared.id))
      throw new RequestMalformedError(
        `task ${run.id} already has ${MAX_CONFIGS_PER_TASK} push notification configs; delete one first`,
      )
    // Notifications start with the first change after the config exists.
    const fold = await this.foldOf(call.ctx, run)
    const rec = await a2a.putPushConfig(call.ctx, {
      ...prepared,
      taskId: run.id,
      wireVersion: call.version,
      notifiedSeq: fold.seq,
      lastState: fold.state,
    })
    void this.o.audit.action(call.ctx, 'a2a.push_config.put', `${run.agent}/${run.id}/${rec.id}`)
    this.o.pushWritten?.()
    return rec
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** The run behind a task id, if the caller may see it and it belongs to this endpoint's agent. */
  private async task(call: A2aCall, id: string): Promise<RunRecord> {
    if (!id) throw new RequestMalformedError('a task id is required')
    const run = await this.o.store.runs.get(call.ctx, id)
    if (!run || run.agent !== call.agent.name) throw new TaskNotFoundError(`task ${id} not found`)
    return run
  }

  /** The A2A `tenant` field may only name the caller's own tenant (the API key selects the tenant). */
  private checkTenant(call: A2aCall, tenant: string | undefined): void {
    if (tenant && tenant !== call.ctx.tenant)
      throw new RequestMalformedError(
        `tenant ${tenant} is not the caller's tenant; leave it empty (the credentials select the tenant)`,
      )
  }

  /** Folds the run's whole event log. */
  private async foldOf(ctx: CallContext, run: RunRecord): Promise<TaskFold> {
    const fold = new TaskFold(run)
    for (let after = 0; ;) {
      const events = await this.o.store.runs.events(ctx, run.id, after, 1000)
      for (const e of events) fold.apply(e)
      if (events.length < 1000) return fold
      after = events[events.length - 1]!.seq
    }
  }

  /** The values given to the run's interrupts, in order (for the history). */
  private async answersOf(runId: string): Promise<unknown[]> {
    return (await this.o.store.runs.journal(runId))
      .filter((j) => j.kind === 'interrupt' && j.status === 'done')
      .map((j) => j.result)
  }

  private async taskOf(
    ctx: CallContext,
    run: RunRecord,
    opts: { historyLength?: number | undefined; includeArtifacts?: boolean },
  ): Promise<TaskJson> {
    const fold = await this.foldOf(ctx, run)
    const answers = opts.historyLength === 0 ? [] : await this.answersOf(run.id)
    return fold.task({
      answers,
      ...(opts.historyLength !== undefined ? { historyLength: opts.historyLength } : {}),
      ...(opts.includeArtifacts !== undefined ? { includeArtifacts: opts.includeArtifacts } : {}),
    })
  }

  /**
   * The task as folded so far, then every later event of the run's log, live; closes when the task
   * reaches a terminal state or needs input, when the client goes away, or on shutdown.
   */
  private async *stream(
    call: A2aCall,
    fold: TaskFold,
    historyLength?: number,
  ): AsyncGenerator<StreamResponse, void, undefined> {
    const answers = historyLength === 0 ? [] : await this.answersOf(fold.run.id)
    yield StreamResponse.fromJSON({
      task: fold.task({ answers, ...(historyLength !== undefined ? { historyLength } : {}) }),
    })
    if (fold.ended) return
    const queue: Derived[] = []
    let done = false
    let failure: unknown
    let wake: (() => void) | undefined
    const stop = new AbortController()
    const signal = AbortSignal.any([call.signal, stop.signal, this.o.closing])
    const following = this.o.runs
      .follow(
        call.ctx,
        fold.run.id,
        fold.seq,
        (e) => {
          queue.push(...fold.apply(e))
          wake?.()
        },
        signal,
      )
      .then(
        () => undefined,
        (err: unknown) => {
          failure = err
        },
      )
      .finally(() => {
        done = true
        wake?.()
      })
    try {
      for (;;) {
        const d = queue.shift()
        if (d) {
          yield StreamResponse.fromJSON(d.event)
          if (!d.transient && 'statusUpdate' in d.event) {
            const state = parseState(d.event.statusUpdate.status.state)
            if (state && SETTLED_STATES.has(state)) return
          }
          continue
        }
        if (done) {
          if (failure) throw failure
          return
        }
        await new Promise<void>((resolve) => {
          wake = resolve
          if (queue.length || done) resolve()
        })
        wake = undefined
      }
    } finally {
      stop.abort()
      await following
    }
  }

  /** Runs `fn`, turning gateway errors into A2A errors (or a transport-level escape). */
  private async guard<T>(call: A2aCall, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      this.fail(call, err)
    }
  }

  private fail(call: A2aCall, err: unknown): never {
    if (err instanceof A2AError) throw err
    if (err instanceof PushConfigError) throw new RequestMalformedError(err.message)
    if (err instanceof GatewayError) {
      switch (err.code) {
        case 'not_found':
          throw new TaskNotFoundError(err.message)
        case 'bad_request':
        case 'invalid_params':
        case 'invalid_manifest':
          throw new RequestMalformedError(err.message)
        case 'conflict':
        case 'not_supported':
          throw new UnsupportedOperationError(err.message)
        case 'forbidden':
        case 'rate_limited':
        case 'unauthenticated':
          call.escape = err
          throw new Error(err.message)
        case 'internal':
          this.o.logger.error({ err }, 'a2a request failed')
          throw new Error('internal error')
        default:
          throw new Error(err.message)
      }
    }
    if (err instanceof DOMException && err.name === 'AbortError') throw new Error('the request was cancelled')
    this.o.logger.error({ err }, 'a2a request failed')
    throw new Error('internal error')
  }
}
