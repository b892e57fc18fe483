import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { PolicySpec } from '../manifests/schema.js'
import type { PolicyDecider } from '../pipeline/stages.js'
import type { Next, ToolCall } from '../pipeline/types.js'
import type { ExposedTool } from '../registry.js'
import type { ResourceRecord } from '../store/types.js'
import type { JsonObject } from '../upstream/rpc.js'
import type { ApprovalService } from './approvals.js'
import type { Limits } from './limits.js'
import {
  compilePolicies,
  decide,
  listable,
  type CallFacts,
  type Decision,
  type TenantPolicy,
} from './rules.js'

export interface PolicyEngineOptions {
  approvals?: ApprovalService
  limits?: Limits
  /** Key of the `hash` redaction mode (HMAC). */
  hashKey: string
}

function factsOf(ctx: CallContext, tool: ExposedTool, args?: Record<string, unknown>): CallFacts {
  return {
    ctx,
    connector: tool.connection.name,
    tool: tool.name,
    exposed: tool.exposed,
    ...(args ? { args } : {}),
  }
}

/**
 * Policy manifests as a pipeline stage. Policies are compiled once per apply into one rule set per
 * tenant (plus the global ones); a tenant without any costs one map lookup per call.
 * Order per call: deny → approval → rate limits and budgets → argument redaction → the call →
 * result redaction.
 */
export class PolicyEngine implements PolicyDecider {
  private byTenant = new Map<string, TenantPolicy>()
  /** Contexts whose MCP call of an agent tool the pipeline admitted (the run it starts is not counted twice). */
  private readonly admitted = new WeakSet<CallContext>()
  private global: TenantPolicy | undefined

  constructor(private readonly o: PolicyEngineOptions) {}

  /** Recompiles from the full set of applied resources. */
  load(resources: readonly ResourceRecord[]): void {
    const own = new Map<string, { name: string; spec: PolicySpec }[]>()
    const globals: { name: string; spec: PolicySpec }[] = []
    for (const r of resources) {
      if (r.kind !== 'Policy') continue
      const spec = r.spec as PolicySpec
      if (spec.global) globals.push({ name: `${r.tenant}/${r.name}`, spec })
      else {
        const list = own.get(r.tenant) ?? []
        list.push({ name: r.name, spec })
        own.set(r.tenant, list)
      }
    }
    const byTenant = new Map<string, TenantPolicy>()
    for (const [tenant, list] of own)
      byTenant.set(tenant, compilePolicies([...list, ...globals], this.o.hashKey))
    this.byTenant = byTenant
    this.global = globals.length ? compilePolicies(globals, this.o.hashKey) : undefined
  }

  /** The compiled policy of a tenant; undefined when none applies. */
  forTenant(tenant: string): TenantPolicy | undefined {
    return this.byTenant.get(tenant) ?? this.global
  }

  enforce(call: ToolCall, next: Next): Promise<JsonObject> | undefined {
    const p = this.byTenant.get(call.ctx.tenant) ?? this.global
    return p ? this.run(p, call, next) : undefined
  }

  /** What policy decides for a call (no side effects). */
  evaluate(ctx: CallContext, tool: ExposedTool, args: Record<string, unknown>): Decision {
    const p = this.forTenant(ctx.tenant)
    return (p && decide(p, factsOf(ctx, tool, args))?.decision) ?? 'allow'
  }

  /** The tools a caller is shown: those no argument-independent rule denies. */
  visible(ctx: CallContext, tools: ExposedTool[]): ExposedTool[] {
    const p = this.forTenant(ctx.tenant)
    if (!p || !p.rules.some((r) => r.decision === 'deny')) return tools
    return tools.filter((t) => listable(p, factsOf(ctx, t)))
  }

  private async run(p: TenantPolicy, call: ToolCall, next: Next): Promise<JsonObject> {
    const { ctx, tool } = call
    const rule = p.rules.length ? decide(p, factsOf(ctx, tool, call.args)) : undefined
    if (rule?.decision === 'deny')
      throw new GatewayError(
        'forbidden',
        `policy ${rule.id} denies ${tool.exposed}${rule.reason ? `: ${rule.reason}` : ''}`,
      )
    if (rule?.decision === 'approve') {
      if (!this.o.approvals)
        throw new GatewayError('not_supported', 'approvals are not configured on this gateway')
      const gate = await this.o.approvals.gate(call, rule)
      if ('result' in gate) return gate.result
      call.args = gate.args
    }
    const facts = factsOf(ctx, tool, call.args)
    if (this.o.limits && (p.budgets.length || p.rateLimits.length)) await this.o.limits.admitCall(p, facts)
    if (tool.invoke) this.admitted.add(ctx)
    if (!p.redactions.length) return next()
    for (const r of p.redactions) if (r.arguments && r.matches(facts)) call.args = r.redactor.value(call.args)
    let result = await next()
    for (const r of p.redactions) if (r.results && r.matches(facts)) result = r.redactor.value(result)
    return result
  }

  /**
   * A run started through the REST API counts as a call of `agents__{agent}`: deny rules and
   * budgets and rate limits apply (approve rules apply to tool calls only). A run an MCP call of
   * the agent tool starts was admitted by the pipeline already.
   */
  async admitRunStart(ctx: CallContext, agent: string): Promise<void> {
    if (this.admitted.delete(ctx)) return
    const p = this.forTenant(ctx.tenant)
    if (!p) return
    const f: CallFacts = { ctx, connector: 'agents', tool: agent, exposed: `agents__${agent}` }
    const rule = p.rules.length ? decide(p, f) : undefined
    if (rule?.decision === 'deny')
      throw new GatewayError(
        'forbidden',
        `policy ${rule.id} denies agents__${agent}${rule.reason ? `: ${rule.reason}` : ''}`,
      )
    if (this.o.limits && (p.budgets.length || p.rateLimits.length)) await this.o.limits.admitCall(p, f)
  }

  /** Model spend admission for a caller (llm agents, before a model call). */
  async admitSpend(ctx: CallContext): Promise<void> {
    const p = this.forTenant(ctx.tenant)
    if (p?.budgets.length && this.o.limits) await this.o.limits.admitSpend(p, ctx)
  }

  /** Counts model usage against the caller's token and cost budgets. */
  async recordUsage(
    ctx: CallContext,
    usage: { model: string; promptTokens: number; completionTokens: number },
  ): Promise<void> {
    const p = this.forTenant(ctx.tenant)
    if (p?.budgets.length && this.o.limits) await this.o.limits.recordUsage(p, ctx, usage)
  }
}
