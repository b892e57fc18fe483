import { randomUUID } from 'node:crypto'
import { Ajv } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { createContext, systemContext, type CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { argsHash as hashArgs, canonicalJson } from '../pipeline/stages.js'
import type { ToolCall } from '../pipeline/types.js'
import type { ExposedTool } from '../registry.js'
import { ownerOf, seesTenant } from '../store/owner.js'
import type { ApprovalRecord, ApprovalStatus, ApprovalStore } from '../store/policy.js'
import { TERMINAL_STATUSES, type RunRecord } from '../store/runs.js'
import { auditId, type AuditWriter } from '../telemetry/audit.js'
import type { JsonObject } from '../upstream/rpc.js'
import { approvalOfInterrupt, ApprovalPendingError } from './pending.js'
import type { CompiledRule, Decision } from './rules.js'

/** The `_meta` key of the run journal's idempotency key (src/runs/context.ts). */
export const IDEMPOTENCY_KEY = 'io.gatehouse/idempotency-key'
/** `_meta` key naming the approval a result or a call is about. */
export const APPROVAL_META = 'io.gatehouse/approval'

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }))

/** The form an approver fills in (MCP elicitation, or a run's interrupt). */
export const DECISION_SCHEMA = {
  type: 'object',
  properties: {
    decision: { type: 'string', title: 'Decision', enum: ['approve', 'reject'] },
    reason: { type: 'string', title: 'Reason' },
  },
  required: ['decision'],
} as const

export interface DecisionInput {
  decision: 'approve' | 'reject' | 'edit'
  args?: Record<string, unknown>
  reason?: string
}

/** Told about approvals as they are requested and decided (Slack). Failures are logged, never fatal. */
export interface ApprovalNotifier {
  requested(a: ApprovalRecord): Promise<void>
  decided(a: ApprovalRecord): Promise<void>
}

/** The run API as approvals need it (RunService). */
export interface RunResumer {
  get(ctx: CallContext, id: string): Promise<RunRecord>
  resume(ctx: CallContext, id: string, value: unknown): Promise<RunRecord>
}

export interface ApprovalServiceOptions {
  store: ApprovalStore
  audit: AuditWriter
  logger: Logger
  /** Default time to decide, when a rule gives no timeout. */
  defaultTimeoutMs: number
  sweepMs: number
  /** The tool a tenant exposes under a name (edited arguments are checked against its schema). */
  tool(tenant: string, exposed: string): Promise<ExposedTool | undefined>
  /** Policy's decision for a call with other arguments (edits are evaluated again). */
  evaluate(ctx: CallContext, tool: ExposedTool, args: Record<string, unknown>): Decision
}

/** The public JSON shape of an approval. */
export function approvalView(a: ApprovalRecord): Record<string, unknown> {
  return {
    id: a.id,
    tenant: a.tenant,
    status: a.status,
    tool: a.tool,
    connector: a.connector,
    arguments: a.args,
    arguments_hash: a.argsHash,
    run_id: a.runId ?? null,
    requester: `${a.requester.kind}:${a.requester.id}`,
    ...(a.requester.onBehalfOf
      ? { on_behalf_of: `${a.requester.onBehalfOf.kind}:${a.requester.onBehalfOf.id}` }
      : {}),
    approvers: a.approvers,
    rule: a.rule,
    ...(a.ruleReason ? { rule_reason: a.ruleReason } : {}),
    expires_at: a.expiresAt,
    decision: a.decision ?? null,
    decider: a.decider ?? null,
    reason: a.reason ?? null,
    edited_arguments: a.editedArgs ?? null,
    channel: a.channel ?? null,
    created_at: a.createdAt,
    decided_at: a.decidedAt ?? null,
    used_at: a.usedAt ?? null,
  }
}

const who = (ctx: CallContext) => `${ctx.principal.kind}:${ctx.principal.id}`

/** What a caller whose call was rejected (or expired) gets: a tool error with the reason. */
export function rejectionResult(a: ApprovalRecord): JsonObject {
  const text =
    a.status === 'expired'
      ? `The call of ${a.tool} was not made: approval ${a.id} expired at ${a.expiresAt} before anyone decided.`
      : `The call of ${a.tool} was rejected by ${a.decider ?? 'an approver'}${a.reason ? `: ${a.reason}` : '.'}`
  return {
    content: [{ type: 'text', text }],
    isError: true,
    _meta: { [APPROVAL_META]: { id: a.id, status: a.status, reason: a.reason ?? null } },
  }
}

/** What a direct MCP caller gets while an approval is pending. */
export function pendingResult(a: ApprovalRecord): JsonObject {
  return {
    content: [
      {
        type: 'text',
        text:
          `The call of ${a.tool} needs approval ${a.id}${a.ruleReason ? ` (${a.ruleReason})` : ''}. ` +
          `An approver decides with POST /v1/approvals/${a.id}/decision; once it is approved, call the ` +
          `tool again with the same arguments (before ${a.expiresAt}).`,
      },
    ],
    isError: true,
    structuredContent: { approval_id: a.id, status: a.status, expires_at: a.expiresAt },
    _meta: { [APPROVAL_META]: { id: a.id, status: a.status } },
  }
}

/**
 * The approvals ledger as a service: the pipeline's gate for `decision: approve`, decisions from
 * the API, MCP elicitation, run resumes and Slack, and the sweeper that expires what nobody
 * decided and resumes runs whose approval was decided.
 */
export class ApprovalService {
  private runs?: RunResumer
  private readonly notifiers: ApprovalNotifier[] = []
  private timer?: NodeJS.Timeout
  private sweeping?: Promise<void>

  constructor(private readonly o: ApprovalServiceOptions) {}

  /** Wired after construction (the run service needs the pipeline, which needs this). */
  attachRuns(runs: RunResumer): void {
    this.runs = runs
  }

  addNotifier(n: ApprovalNotifier): void {
    this.notifiers.push(n)
  }

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.o.sweepMs)
    this.timer.unref()
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.sweeping
  }

  // ---- the gate ------------------------------------------------------------------------------

  /**
   * A call that policy sends to a human. Returns the arguments to call with once approved (the
   * approval id becomes the call's idempotency key), or a result to answer with instead (pending,
   * rejected, expired). In a run, a pending approval throws ApprovalPendingError: the run pauses.
   */
  async gate(call: ToolCall, rule: CompiledRule): Promise<{ args: JsonObject } | { result: JsonObject }> {
    const { ctx, tool } = call
    const meta = call.extra._meta as JsonObject | undefined
    const key = meta?.[IDEMPOTENCY_KEY]
    const runId =
      ctx.principal.kind === 'agent' && typeof key === 'string' && key.startsWith(`${ctx.requestId}:`)
        ? ctx.requestId
        : undefined
    const argsJson = canonicalJson(call.args)
    const argsHash = hashArgs(call.args)
    const nowIso = new Date().toISOString()

    let a: ApprovalRecord | undefined
    if (runId) {
      a = await this.o.store.byRequestKey(ctx, key as string)
      if (a && (a.tool !== tool.exposed || a.argsHash !== argsHash))
        throw new GatewayError(
          'conflict',
          `run ${runId} asks at this position for ${tool.exposed} with other arguments than approval ${a.id} was requested for; agent code must make the same calls on every execution`,
        )
    } else {
      a = await this.o.store.reusable(ctx, {
        requesterKey: ownerOf(ctx),
        tool: tool.exposed,
        argsHash,
        nowIso,
      })
    }
    if (!a) a = await this.request(call, rule, argsJson, argsHash, runId, runId ? (key as string) : undefined)

    if (a.status === 'pending' && !runId) a = await this.askCaller(call, a)
    switch (a.status) {
      case 'pending':
        if (runId) throw this.pendingError(a)
        return { result: pendingResult(a) }
      case 'approved':
        if (runId) {
          void this.o.store.markNotified(a.id).catch(() => undefined)
        } else if (!(await this.o.store.markUsed(ctx, a.id, nowIso))) {
          // Used by a concurrent identical call a moment ago: this one needs its own approval.
          return { result: pendingResult(await this.request(call, rule, argsJson, argsHash)) }
        }
        this.useApproval(call, a)
        return { args: (a.editedArgs ?? call.args) as JsonObject }
      default:
        if (runId) void this.o.store.markNotified(a.id).catch(() => undefined)
        return { result: rejectionResult(a) }
    }
  }

  /** The approval id becomes the idempotency key of the call the upstream sees. */
  private useApproval(call: ToolCall, a: ApprovalRecord): void {
    const meta = (call.extra._meta as JsonObject | undefined) ?? {}
    ;(call.extra as JsonObject)._meta = { ...meta, [IDEMPOTENCY_KEY]: a.id, [APPROVAL_META]: a.id }
  }

  private pendingError(a: ApprovalRecord): ApprovalPendingError {
    return new ApprovalPendingError(
      a.id,
      {
        type: 'approval',
        approval_id: a.id,
        tool: a.tool,
        arguments: a.args,
        rule: a.rule,
        ...(a.ruleReason ? { reason: a.ruleReason } : {}),
        expires_at: a.expiresAt,
        question: `Approve the call of ${a.tool} with ${JSON.stringify(a.args)}?`,
        schema: DECISION_SCHEMA,
      },
      `the call of ${a.tool} waits for approval ${a.id}`,
    )
  }

  private async request(
    call: ToolCall,
    rule: CompiledRule,
    argsJson: string,
    argsHash: string,
    runId?: string,
    requestKey?: string,
  ): Promise<ApprovalRecord> {
    const { ctx, tool } = call
    const timeout = rule.timeoutMs ?? this.o.defaultTimeoutMs
    const { approval, created } = await this.o.store.create(ctx, {
      id: randomUUID(),
      ...(runId ? { runId } : {}),
      ...(requestKey ? { requestKey } : {}),
      tool: tool.exposed,
      connector: tool.connection.name,
      toolName: tool.name,
      args: JSON.parse(argsJson) as Record<string, unknown>,
      argsHash,
      requester: ctx.principal,
      requesterRoles: [...ctx.roles],
      requesterKey: ownerOf(ctx),
      approvers: rule.approvers,
      rule: rule.id,
      ...(rule.reason ? { ruleReason: rule.reason } : {}),
      expiresAt: new Date(Date.now() + timeout).toISOString(),
    })
    if (created) {
      this.audit(ctx, 'approval.request', approval, 'ok')
      this.notify('requested', approval)
    }
    return approval
  }

  /** A direct caller who may decide and can answer a form is asked right away (MCP elicitation). */
  private async askCaller(call: ToolCall, a: ApprovalRecord): Promise<ApprovalRecord> {
    const ask = call.relay?.onRequest
    if (!call.canElicit || !ask || !this.canDecide(call.ctx, a)) return a
    let res: { action?: string; content?: Record<string, unknown> } | undefined
    try {
      res = (await ask('elicitation/create', {
        mode: 'form',
        message: `Approve the call of ${a.tool} with ${JSON.stringify(a.args)}?${a.ruleReason ? ` (${a.ruleReason})` : ''}`,
        requestedSchema: DECISION_SCHEMA as unknown as JsonObject,
      })) as typeof res
    } catch (err) {
      this.o.logger.debug({ err }, 'approval elicitation failed; answering with the approval id')
      return a
    }
    const decision =
      res?.action === 'accept' && (res.content?.decision === 'approve' || res.content?.decision === 'reject')
        ? (res.content.decision as 'approve' | 'reject')
        : res?.action === 'decline'
          ? 'reject'
          : undefined
    if (!decision) return a
    const reason = typeof res?.content?.reason === 'string' ? res.content.reason : undefined
    return this.decide(call.ctx, a.id, { decision, ...(reason ? { reason } : {}) }, 'mcp')
  }

  // ---- decisions -----------------------------------------------------------------------------

  /** Whether this caller may decide this approval: one of its approver roles, or a named principal. */
  canDecide(ctx: CallContext, a: ApprovalRecord): boolean {
    if (ctx.tenant !== a.tenant) return false
    if (a.approvers.roles.some((r) => ctx.roles.has(r))) return true
    return a.approvers.principals.some((p) => p === ctx.principal.id || p === who(ctx))
  }

  /** Approvers, admins and auditors see the tenant's approvals; everybody else the ones they asked for. */
  private sees(ctx: CallContext, a: ApprovalRecord): boolean {
    return (
      seesTenant(ctx) ||
      ctx.roles.has('approver') ||
      a.requesterKey === ownerOf(ctx) ||
      this.canDecide(ctx, a)
    )
  }

  async get(ctx: CallContext, id: string): Promise<ApprovalRecord> {
    const a = await this.o.store.get(ctx, id)
    if (!a || !this.sees(ctx, a)) throw new GatewayError('not_found', `approval ${id} not found`)
    return a
  }

  list(ctx: CallContext, q: { status?: ApprovalStatus; runId?: string; limit?: number; before?: string }) {
    const all = seesTenant(ctx) || ctx.roles.has('approver')
    return this.o.store.list(ctx, { ...q, ...(all ? {} : { requesterKey: ownerOf(ctx) }) })
  }

  /**
   * pending → approved | rejected, once (a compare-and-swap): deciding again the same way is a
   * no-op answered with the approval; deciding it the other way is a conflict. Edited arguments
   * must fit the tool's schema and pass policy again.
   */
  async decide(ctx: CallContext, id: string, input: DecisionInput, channel: string): Promise<ApprovalRecord> {
    const a = await this.get(ctx, id)
    if (!this.canDecide(ctx, a))
      throw new GatewayError(
        'forbidden',
        `only ${[...a.approvers.roles.map((r) => `the ${r} role`), ...a.approvers.principals].join(' or ')} may decide approval ${id}`,
      )
    let editedArgs: Record<string, unknown> | undefined
    if (input.decision === 'edit') {
      if (!input.args || typeof input.args !== 'object' || Array.isArray(input.args))
        throw new GatewayError('bad_request', 'decision edit needs args: the arguments to call the tool with')
      editedArgs = await this.checkEdit(a, input.args)
    } else if (input.args !== undefined) {
      throw new GatewayError('bad_request', 'args go with decision edit only')
    }
    const status = input.decision === 'reject' ? 'rejected' : 'approved'
    const res = await this.o.store.decide(
      ctx,
      id,
      {
        status,
        decision: input.decision,
        decider: who(ctx),
        ...(input.reason ? { reason: input.reason } : {}),
        ...(editedArgs ? { editedArgs } : {}),
        channel,
      },
      new Date().toISOString(),
    )
    if (!res) throw new GatewayError('not_found', `approval ${id} not found`)
    const cur = res.approval
    if (!res.changed) {
      if (cur.status === status) return cur // a double click
      if (cur.status === 'pending')
        throw new GatewayError(
          'conflict',
          `approval ${id} expired at ${cur.expiresAt}; it can no longer be decided`,
        )
      throw new GatewayError(
        'conflict',
        `approval ${id} is already ${cur.status} (by ${cur.decider ?? 'someone'})`,
      )
    }
    this.audit(ctx, `approval.${input.decision}`, cur, 'ok')
    this.notify('decided', cur)
    if (cur.runId)
      await this.resumeRun(cur).catch((err: unknown) =>
        this.o.logger.warn({ err }, 'resume after decision failed; the sweeper retries'),
      )
    return cur
  }

  private async checkEdit(
    a: ApprovalRecord,
    args: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const tool = await this.o.tool(a.tenant, a.tool)
    if (!tool)
      throw new GatewayError('conflict', `tool ${a.tool} is no longer available; the call cannot be edited`)
    const schema = tool.def.inputSchema
    if (schema && typeof schema === 'object') {
      let validate
      try {
        validate = ajv.compile(schema as object)
      } catch {
        validate = undefined
      }
      if (validate && !validate(args)) {
        const problems = (validate.errors ?? []).map(
          (e) => `${e.instancePath || '(args)'} ${e.message ?? 'is invalid'}`,
        )
        throw new GatewayError(
          'bad_request',
          `edited args do not match the schema of ${a.tool}: ${problems.join('; ')}`,
          {
            details: problems,
          },
        )
      }
    }
    // Edits are evaluated as the requester's call again: an edit may not turn a call into one policy denies.
    const requesterCtx = createContext({ tenant: a.tenant, principal: a.requester, roles: a.requesterRoles })
    if (this.o.evaluate(requesterCtx, tool, args) === 'deny')
      throw new GatewayError('forbidden', `policy denies ${a.tool} with the edited arguments`)
    return JSON.parse(canonicalJson(args)) as Record<string, unknown>
  }

  /**
   * A resume of a run paused for approval is a decision by whoever resumes it (API resume, or an
   * MCP client answering the agent tool's elicitation): the value is `{decision, reason?, args?}`
   * or "approve" / "reject". Returns undefined when the run does not wait for a pending approval.
   */
  async onResume(ctx: CallContext, run: RunRecord, value: unknown): Promise<RunRecord | undefined> {
    const id = approvalOfInterrupt(run.interrupt)
    if (!id || run.status !== 'interrupted') return undefined
    const a = await this.o.store.get(ctx, id)
    if (!a || a.status !== 'pending') return undefined
    const v =
      typeof value === 'string'
        ? { decision: value }
        : value && typeof value === 'object'
          ? (value as Record<string, unknown>)
          : {}
    const decision = v.decision
    if (decision !== 'approve' && decision !== 'reject' && decision !== 'edit')
      throw new GatewayError(
        'conflict',
        `run ${run.id} waits for approval ${id}: resume it with {"value": {"decision": "approve" | "reject" | "edit"}}, or decide with POST /v1/approvals/${id}/decision`,
      )
    await this.decide(
      ctx,
      id,
      {
        decision,
        ...(typeof v.reason === 'string' ? { reason: v.reason } : {}),
        ...(v.args && typeof v.args === 'object' ? { args: v.args as Record<string, unknown> } : {}),
      },
      'resume',
    )
    return this.runs!.get(ctx, run.id)
  }

  /** Tells the run its approval was decided: resumes it if it waits for this approval. */
  private async resumeRun(a: ApprovalRecord): Promise<void> {
    if (!this.runs || !a.runId) return
    const sys = systemContext(a.tenant)
    let run: RunRecord
    try {
      run = await this.runs.get(sys, a.runId)
    } catch {
      await this.o.store.markNotified(a.id)
      return
    }
    if (TERMINAL_STATUSES.has(run.status)) return this.o.store.markNotified(a.id)
    if (run.status !== 'interrupted') return // still on its way to the pause: the sweeper retries
    if (approvalOfInterrupt(run.interrupt) !== a.id) return this.o.store.markNotified(a.id)
    try {
      await this.runs.resume(sys, a.runId, { approval_id: a.id, status: a.status })
    } catch (err) {
      if (!(err instanceof GatewayError && err.code === 'conflict')) throw err
      return
    }
    await this.o.store.markNotified(a.id)
  }

  // ---- sweeper -------------------------------------------------------------------------------

  /** Expires approvals nobody decided in time, and resumes runs whose approval was decided. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        for (const a of await this.o.store.expireDue(new Date().toISOString(), 100)) {
          this.audit(systemContext(a.tenant), 'approval.expire', a, 'ok')
          this.notify('decided', a)
        }
        for (const a of await this.o.store.unnotified(100)) await this.resumeRun(a)
      } catch (err) {
        this.o.logger.error({ err }, 'approval sweep failed')
      } finally {
        this.sweeping = undefined
      }
    })()
    return this.sweeping
  }

  private notify(what: 'requested' | 'decided', a: ApprovalRecord): void {
    for (const n of this.notifiers)
      void n[what](a).catch((err: unknown) =>
        this.o.logger.warn({ err, approval: a.id }, `approval notifier failed`),
      )
  }

  private audit(ctx: CallContext, action: string, a: ApprovalRecord, outcome: 'ok' | 'denied'): void {
    void this.o.audit.write({
      id: auditId(),
      tenant: a.tenant,
      at: new Date().toISOString(),
      principal: ctx.principal.id,
      principalKind: ctx.principal.kind,
      action,
      target: `${a.connector}/${a.toolName}#${a.id}`,
      outcome,
      argsHash: a.argsHash,
      requestId: ctx.requestId,
    })
  }
}
