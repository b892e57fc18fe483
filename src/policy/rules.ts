import type { CallContext, Principal, Role } from '../context.js'
import {
  durationMs,
  type BudgetSpec,
  type PolicyMatchSpec,
  type PolicyRuleSpec,
  type PolicySpec,
  type RateLimitSpec,
  type RedactionSpec,
} from '../manifests/schema.js'
import { compileExpression, globToRegExp, jsonEqual, POLICY_VARIABLES, type Env } from './expr.js'
import { Redactor } from './redact.js'

export type Decision = 'allow' | 'deny' | 'approve'

/** What a rule can look at: who calls what, and (except when listing) with which arguments. */
export interface CallFacts {
  readonly ctx: CallContext
  readonly connector: string
  /** The upstream's own tool name. */
  readonly tool: string
  /** The exposed name `{prefix}__{tool}`. */
  readonly exposed: string
  /** Absent when listing tools. */
  readonly args?: Record<string, unknown>
}

export interface Approvers {
  roles: Role[]
  principals: string[]
}

export interface CompiledRule {
  /** `{policy}/{rule name or index}`. */
  readonly id: string
  readonly policy: string
  readonly decision: Decision
  readonly reason?: string
  readonly specificity: number
  readonly approvers: Approvers
  readonly timeoutMs?: number
  /** Matches on identity and tool (and `when` when it does not read args). */
  readonly static: (f: CallFacts) => boolean
  /** Conditions on the arguments; absent when the rule has none. */
  readonly dynamic?: (f: CallFacts) => boolean
  readonly order: number
}

export interface CompiledRedaction {
  readonly matches: (f: CallFacts) => boolean
  readonly redactor: Redactor
  readonly arguments: boolean
  readonly results: boolean
}

export type Window = 'minute' | 'hour' | 'day' | 'month' | 'total'
export type Per = 'tenant' | 'user' | 'agent'

export interface CompiledBudget {
  readonly id: string
  readonly per: Per
  readonly window: Window
  readonly toolCalls?: number
  readonly tokens?: number
  /** Micro-dollars. */
  readonly costMicros?: number
  readonly matches: (f: CallFacts) => boolean
}

export interface CompiledRateLimit {
  readonly id: string
  readonly per: Per
  readonly perMinute: number
  readonly burst: number
  readonly matches: (f: CallFacts) => boolean
}

/** Everything policy says about one tenant, compiled once per apply. */
export interface TenantPolicy {
  /** Most specific first; at equal specificity deny, then approve, then allow. */
  readonly rules: readonly CompiledRule[]
  readonly redactions: readonly CompiledRedaction[]
  readonly budgets: readonly CompiledBudget[]
  readonly rateLimits: readonly CompiledRateLimit[]
}

const SEVERITY: Record<Decision, number> = { deny: 3, approve: 2, allow: 1 }
const asList = <T>(v: T | T[] | undefined): T[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v : [v]
const isGlob = (p: string) => p.includes('*') || p.includes('?')

type StrMatcher = (s: string) => boolean

function patternMatcher(patterns: string[]): StrMatcher {
  const exact = new Set(patterns.filter((p) => !isGlob(p)))
  const globs = patterns.filter(isGlob).map(globToRegExp)
  if (!globs.length) return (s) => exact.has(s)
  return (s) => exact.has(s) || globs.some((g) => g.test(s))
}

/** Points for one match field: 2 when every value is exact, 1 with a wildcard. */
const points = (patterns: string[] | undefined): number =>
  patterns === undefined ? 0 : patterns.some(isGlob) ? 1 : 2

function principalChain(ctx: CallContext): Principal[] {
  const chain: Principal[] = []
  for (let p: Principal | undefined = ctx.principal; p && chain.length < 8; p = p.onBehalfOf) chain.push(p)
  return chain
}

/** The principal an agent ultimately acts for. */
function userOf(ctx: CallContext): Principal {
  let p = ctx.principal
  while (p.kind === 'agent' && p.onBehalfOf) p = p.onBehalfOf
  return p
}

export function agentOf(ctx: CallContext): string | undefined {
  return ctx.principal.kind === 'agent' ? (ctx.principal.name ?? ctx.principal.id) : undefined
}

/** The variables of a `when:` expression for one call. */
export function envOf(f: CallFacts): Env {
  const u = userOf(f.ctx)
  return {
    args: f.args ?? null,
    tool: f.tool,
    exposed: f.exposed,
    connector: f.connector,
    tenant: f.ctx.tenant,
    principal: {
      id: f.ctx.principal.id,
      kind: f.ctx.principal.kind,
      name: f.ctx.principal.name ?? null,
    },
    user: { id: u.id, kind: u.kind, name: u.name ?? null },
    roles: [...f.ctx.roles],
    agent: agentOf(f.ctx) ?? null,
  }
}

function argAt(args: Record<string, unknown> | undefined, path: string): unknown {
  let v: unknown = args
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return null
    if (Array.isArray(v)) v = /^\d+$/.test(k) ? v[Number(k)] : undefined
    else v = Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined
    if (v === undefined) return null
  }
  return v ?? null
}

interface MatchParts {
  checks: ((f: CallFacts) => boolean)[]
  specificity: number
}

/** Identity and tool conditions of a match block, as a list of checks and their specificity. */
function compileMatch(m: Omit<PolicyMatchSpec, 'args'> | undefined): MatchParts {
  const checks: ((f: CallFacts) => boolean)[] = []
  let specificity = 0
  if (!m) return { checks, specificity }
  const tenant = asList(m.tenant)
  if (tenant) {
    const t = patternMatcher(tenant)
    checks.push((f) => t(f.ctx.tenant))
    specificity += points(tenant)
  }
  const principal = asList(m.principal)
  if (principal) {
    const p = patternMatcher(principal)
    checks.push((f) => principalChain(f.ctx).some((x) => p(x.id) || p(`${x.kind}:${x.id}`)))
    specificity += points(principal)
  }
  const roles = asList(m.role)
  if (roles) {
    checks.push((f) => roles.some((r) => f.ctx.roles.has(r)))
    specificity += 2
  }
  const agent = asList(m.agent)
  if (agent) {
    const a = patternMatcher(agent)
    checks.push((f) => {
      const name = agentOf(f.ctx)
      return name !== undefined && a(name)
    })
    specificity += points(agent)
  }
  const connector = asList(m.connector)
  if (connector) {
    const c = patternMatcher(connector)
    checks.push((f) => c(f.connector))
    specificity += points(connector)
  }
  const tool = asList(m.tool)
  if (tool) {
    const t = patternMatcher(tool)
    checks.push((f) => t(f.tool) || t(f.exposed))
    specificity += points(tool)
    // An exact exposed name (`github__create_deployment`) also names its connector.
    if (!connector && tool.every((x) => !isGlob(x) && x.includes('__'))) specificity += 2
  }
  return { checks, specificity }
}

const all =
  (checks: ((f: CallFacts) => boolean)[]) =>
  (f: CallFacts): boolean => {
    for (const c of checks) if (!c(f)) return false
    return true
  }

function compileRule(policy: string, r: PolicyRuleSpec, index: number, order: number): CompiledRule {
  const { checks, specificity: base } = compileMatch(r.match)
  let specificity = base
  const dynamic: ((f: CallFacts) => boolean)[] = []
  for (const [path, want] of Object.entries(r.match.args ?? {})) {
    dynamic.push((f) => jsonEqual(argAt(f.args, path), want))
    specificity += 2
  }
  if (r.when) {
    const e = compileExpression(r.when, POLICY_VARIABLES)
    const check = (f: CallFacts) => Boolean(e.fn(envOf(f)))
    // A condition that never reads args is known when listing too.
    ;(e.vars.has('args') ? dynamic : checks).push(check)
    specificity += 2
  }
  const roles = asList(r.approvers?.role) ?? (r.approvers?.principals ? [] : ['approver' as Role])
  return {
    id: `${policy}/${r.name ?? index}`,
    policy,
    decision: r.decision,
    ...(r.reason ? { reason: r.reason } : {}),
    specificity,
    approvers: { roles, principals: r.approvers?.principals ?? [] },
    ...(r.timeout ? { timeoutMs: durationMs(r.timeout) } : {}),
    static: all(checks),
    ...(dynamic.length ? { dynamic: all(dynamic) } : {}),
    order,
  }
}

function compileRedaction(spec: RedactionSpec, hashKey: string): CompiledRedaction {
  const { checks } = compileMatch(spec.match)
  return {
    matches: all(checks),
    redactor: new Redactor({
      detectors: spec.detectors,
      ...(spec.national_ids ? { nationalIds: spec.national_ids } : {}),
      mode: spec.mode,
      hashKey,
    }),
    arguments: spec.apply_to.includes('arguments'),
    results: spec.apply_to.includes('results'),
  }
}

function compileBudget(policy: string, b: BudgetSpec): CompiledBudget {
  return {
    id: `${policy}/${b.name}`,
    per: b.per,
    window: b.window,
    ...(b.tool_calls !== undefined ? { toolCalls: b.tool_calls } : {}),
    ...(b.tokens !== undefined ? { tokens: b.tokens } : {}),
    ...(b.cost_usd !== undefined ? { costMicros: Math.round(b.cost_usd * 1e6) } : {}),
    matches: all(compileMatch(b.match).checks),
  }
}

function compileRateLimit(policy: string, r: RateLimitSpec): CompiledRateLimit {
  return {
    id: `${policy}/${r.name}`,
    per: r.per,
    perMinute: r.per_minute,
    burst: r.burst ?? r.per_minute,
    matches: all(compileMatch(r.match).checks),
  }
}

/** Compiles a set of policies (one tenant's, plus the global ones) into one evaluator. */
export function compilePolicies(
  policies: readonly { name: string; spec: PolicySpec }[],
  hashKey: string,
): TenantPolicy {
  const rules: CompiledRule[] = []
  const redactions: CompiledRedaction[] = []
  const budgets: CompiledBudget[] = []
  const rateLimits: CompiledRateLimit[] = []
  let order = 0
  for (const { name, spec } of policies) {
    spec.rules.forEach((r, i) => rules.push(compileRule(name, r, i, order++)))
    if (spec.redaction) redactions.push(compileRedaction(spec.redaction, hashKey))
    for (const b of spec.budgets) budgets.push(compileBudget(name, b))
    for (const r of spec.rate_limits) rateLimits.push(compileRateLimit(name, r))
  }
  rules.sort(
    (a, b) =>
      b.specificity - a.specificity || SEVERITY[b.decision] - SEVERITY[a.decision] || a.order - b.order,
  )
  return { rules, redactions, budgets, rateLimits }
}

/** The rule that decides a call: the most specific match, deny first at equal specificity; undefined = allow. */
export function decide(p: TenantPolicy, f: CallFacts): CompiledRule | undefined {
  for (const r of p.rules) {
    if (r.static(f) && (!r.dynamic || r.dynamic(f))) return r
  }
  return undefined
}

/**
 * Whether a tool is listed for a caller: hidden only when a rule that does not depend on the
 * arguments denies it and no more specific argument-dependent rule could allow it.
 */
export function listable(p: TenantPolicy, f: CallFacts): boolean {
  for (const r of p.rules) {
    if (!r.static(f)) continue
    if (r.dynamic) {
      if (r.decision !== 'deny') return true
      continue
    }
    return r.decision !== 'deny'
  }
  return true
}
