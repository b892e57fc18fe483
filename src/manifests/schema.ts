import { Cron } from 'croner'
import { z } from 'zod'
import { compileExpression, ExpressionError, POLICY_VARIABLES } from '../policy/expr.js'

/**
 * Manifest schemas (apiVersion gatehouse/v1). Parsed once at the edge; everything inward takes
 * the typed values. Secret fields accept only references, never literals.
 */

export const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9_-]{0,47}[A-Za-z0-9])?$/
const Name = z
  .string()
  .regex(NAME_RE, 'must be 1–49 characters of [A-Za-z0-9_-], starting and ending alphanumeric')

export const SecretRefSchema = z.union([
  z
    .object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') })
    .strict(),
  z.object({ sealed: z.string().startsWith('gh1.', 'must be a value made by `gatehouse seal`') }).strict(),
])

const SecretField = z.union([z.string(), SecretRefSchema], {
  error: 'must be a string, { env: NAME } or { sealed: "gh1.…" }',
})
const SecretOnly = z.custom<z.infer<typeof SecretRefSchema>>((v) => SecretRefSchema.safeParse(v).success, {
  message: 'secrets are never literal: use { env: NAME } or { sealed: "…" } (see `gatehouse seal`)',
})

export const ToolFilterSchema = z
  .object({
    allow: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).optional(),
  })
  .strict()

const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http or https URL' })
const OAuthScope = z
  .string()
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be one OAuth scope token (no spaces or quotes)')

/** Providers whose endpoints and quirks Gatehouse knows (src/oauth presets). */
export const OAUTH_PROVIDERS = ['github', 'slack'] as const

/**
 * Per-user token brokering: each user connects their own upstream account (authorization code +
 * PKCE) and every call carries their token. Endpoints come from a preset (`provider`), from
 * issuer discovery (`issuer`), written out (`authorization_endpoint` + `token_endpoint`), or —
 * for an http upstream that names none of these — from the upstream itself per the MCP
 * authorization spec (RFC 9728 then RFC 8414 / OIDC discovery).
 */
export const OAuth2AuthSchema = z
  .object({
    type: z.literal('oauth2'),
    provider: z.enum(OAUTH_PROVIDERS).optional(),
    issuer: HttpUrl.optional(),
    authorization_endpoint: HttpUrl.optional(),
    token_endpoint: HttpUrl.optional(),
    revocation_endpoint: HttpUrl.optional(),
    /** Pre-registered client; without one, a client metadata document or dynamic registration is used. */
    client_id: z.string().min(1).max(500).optional(),
    client_secret: SecretOnly.optional(),
    token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
    /** Scopes asked for when a user connects. */
    scopes: z.array(OAuthScope).max(100).default([]),
    /** Extra scopes particular tools need (upstream tool name → scopes): asked for when first needed. */
    tool_scopes: z.record(z.string().min(1), z.array(OAuthScope).max(100)).optional(),
    /** Extra authorization request parameters (for example Slack's user_scope is filled by its preset). */
    authorization_params: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), z.string().max(2000)).optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.client_secret && !a.client_id)
      ctx.addIssue({ code: 'custom', path: ['client_secret'], message: 'client_secret needs client_id' })
    if (Boolean(a.authorization_endpoint) !== Boolean(a.token_endpoint))
      ctx.addIssue({
        code: 'custom',
        path: [a.authorization_endpoint ? 'token_endpoint' : 'authorization_endpoint'],
        message: 'authorization_endpoint and token_endpoint go together',
      })
    if (a.issuer && a.authorization_endpoint)
      ctx.addIssue({
        code: 'custom',
        path: ['issuer'],
        message: 'give either issuer (discovery) or the endpoints, not both',
      })
    if (a.token_endpoint_auth_method && a.token_endpoint_auth_method !== 'none' && !a.client_secret)
      ctx.addIssue({
        code: 'custom',
        path: ['token_endpoint_auth_method'],
        message: `${a.token_endpoint_auth_method} needs client_secret`,
      })
  })
export type OAuth2Auth = z.infer<typeof OAuth2AuthSchema>

const AuthSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z
    .object({
      type: z.literal('static'),
      token: SecretOnly,
      /** Header carrying the token; `scheme` is prepended when set. */
      header: z.string().min(1).default('Authorization'),
      scheme: z.string().default('Bearer'),
    })
    .strict(),
  OAuth2AuthSchema,
])

const ConnectorBase = {
  description: z.string().optional(),
  /** Tool name prefix; default the connector name; "" exposes upstream names unchanged. */
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]*$/, 'must be [A-Za-z0-9_-]')
    .max(40)
    .optional(),
  tools: ToolFilterSchema.optional(),
  auth: AuthSchema.optional(),
  timeout_ms: z.number().int().positive().max(3_600_000).optional(),
  /** When listing: leave a dead upstream out (`omit`, default) or fail the whole listing (`fail`). */
  on_error: z.enum(['omit', 'fail']).default('omit'),
}

export const StdioConnectorSchema = z
  .object({
    ...ConnectorBase,
    transport: z.literal('stdio'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), SecretField).optional(),
    cwd: z.string().optional(),
  })
  .strict()

export const HttpConnectorSchema = z
  .object({
    ...ConnectorBase,
    transport: z.literal('http'),
    url: HttpUrl,
    headers: z.record(z.string(), SecretField).optional(),
    /** Which protocol era to speak; `auto` tries 2026-07-28 and falls back to 2025-11-25 sessions. */
    protocol: z.enum(['auto', '2025-11-25', '2026-07-28']).default('auto'),
  })
  .strict()

/** Bundled tool layers (connectors/): GitHub and Slack APIs with each caller's own token. */
export const BUILTIN_CONNECTORS = ['github', 'slack'] as const

export const BuiltinConnectorSchema = z
  .object({
    ...ConnectorBase,
    transport: z.literal('builtin'),
    builtin: z.enum(BUILTIN_CONNECTORS),
    /** API base URL (GitHub Enterprise: https://HOST/api/v3; tests: a loopback fake). */
    base_url: HttpUrl.optional(),
  })
  .strict()

export const ConnectorSpecSchema = z
  .discriminatedUnion('transport', [StdioConnectorSchema, HttpConnectorSchema, BuiltinConnectorSchema])
  .superRefine((spec, ctx) => {
    if (spec.auth?.type === 'oauth2' && spec.transport === 'stdio') {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'type'],
        message:
          'oauth2 applies to http and builtin connectors (a stdio process has no per-request headers); pass stdio secrets in env',
      })
    }
    if (spec.transport === 'builtin' && spec.auth?.type !== 'oauth2' && spec.auth?.type !== 'static') {
      ctx.addIssue({
        code: 'custom',
        path: ['auth'],
        message: `builtin connector ${spec.builtin} needs auth: { type: oauth2, ... } (each user's own token) or static (one shared token)`,
      })
    }
    if (spec.auth?.type === 'static' && spec.transport === 'stdio') {
      ctx.addIssue({
        code: 'custom',
        path: ['auth'],
        message: 'static auth applies to http connectors; pass stdio secrets in env',
      })
    }
  })

const ServerConnectorRef = z.union([
  Name,
  z.object({ name: Name, tools: ToolFilterSchema.optional() }).strict(),
])

export const ServerSpecSchema = z
  .object({
    description: z.string().optional(),
    connectors: z.array(ServerConnectorRef).default([]),
    /** Agents this server exposes as `agents__{name}` (the tenant-wide /mcp exposes them all). */
    agents: z.array(Name).optional(),
    /** Filter on exposed tool names, after each connector's own filter. */
    tools: ToolFilterSchema.optional(),
  })
  .strict()
  .refine((s) => s.connectors.length > 0 || (s.agents?.length ?? 0) > 0, {
    message: 'a server selects at least one connector or agent',
    path: ['connectors'],
  })

export const TenantSpecSchema = z
  .object({ display_name: z.string().max(200).optional() })
  .strict()
  .default({})

/** JSON Schema of an agent's input: an object schema (checked again when a run is created). */
const InputSchema = z
  .record(z.string(), z.unknown())
  .refine((s) => s.type === undefined || s.type === 'object', 'must be a JSON Schema with type: object')

const AgentBase = {
  description: z.string().max(2000).optional(),
  input: InputSchema.optional(),
}

/** Which tools an llm or a2a agent may call: whole connectors and/or exposed tool names. */
const AgentToolsSchema = z
  .object({
    connectors: z.array(Name).optional(),
    allow: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).optional(),
  })
  .strict()

export const CodeAgentSchema = z
  .object({
    ...AgentBase,
    type: z.literal('code'),
    /** `.js`, `.mjs` or `.ts`; relative to the manifest file (absolute when applied through the API). */
    module: z.string().min(1),
  })
  .strict()

export const LlmAgentSchema = z
  .object({
    ...AgentBase,
    type: z.literal('llm'),
    /** An OpenAI-compatible Chat Completions base URL, e.g. https://api.openai.com/v1. */
    base_url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }),
    model: z.string().min(1),
    api_key: SecretOnly.optional(),
    system: z.string().max(100_000).optional(),
    tools: AgentToolsSchema.optional(),
    max_steps: z.number().int().positive().max(100).default(8),
    temperature: z.number().min(0).max(2).optional(),
    max_tokens: z.number().int().positive().optional(),
  })
  .strict()

export const A2aAgentSchema = z
  .object({
    ...AgentBase,
    type: z.literal('a2a'),
    /** The remote agent's base URL or the URL of its agent card. */
    url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }),
    headers: z.record(z.string(), SecretField).optional(),
    timeout_ms: z.number().int().positive().max(86_400_000).optional(),
  })
  .strict()

/** Agents appear on /mcp as `agents__{name}`; no connector may use this prefix. */
export const AGENT_PREFIX = 'agents'

export const AgentSpecSchema = z.discriminatedUnion('type', [CodeAgentSchema, LlmAgentSchema, A2aAgentSchema])

/** A duration: `90s`, `30m`, `1h`, `2d` (also `500ms`). */
export const DurationSchema = z
  .string()
  .regex(/^\d{1,9}(ms|s|m|h|d)$/, 'must be a duration like 90s, 30m, 1h or 2d')

export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d)
  if (!m) throw new Error(`invalid duration ${d}`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms']
  return Number(m[1]) * unit
}

const Pattern = z.string().min(1).max(200)
/** One pattern or a list; `*` and `?` are wildcards. */
const Patterns = z.union([Pattern, z.array(Pattern).min(1).max(100)])
const RoleName = z.enum(['admin', 'member', 'approver', 'auditor'])
const Roles = z.union([RoleName, z.array(RoleName).min(1)])

/** What a policy rule (or budget, rate limit) applies to. Absent fields match everything. */
export const PolicyMatchSchema = z
  .object({
    /** The call's tenant (global policies only). */
    tenant: Patterns.optional(),
    /** A principal id, or `kind:id` (`user:alice`, `service:k1`, `agent:agent:triage`); agents also match the principal they act for. */
    principal: Patterns.optional(),
    role: Roles.optional(),
    /** The agent making the call (runs), by agent name. */
    agent: Patterns.optional(),
    connector: Patterns.optional(),
    /** The upstream tool name, or the exposed name `{prefix}__{tool}`. */
    tool: Patterns.optional(),
    /** Argument conditions: a dotted path into the arguments → the JSON value it must equal. */
    args: z.record(z.string().min(1).max(200), z.unknown()).optional(),
  })
  .strict()

function checkExpression(src: string, ctx: z.RefinementCtx, path: PropertyKey[]): void {
  try {
    compileExpression(src, POLICY_VARIABLES)
  } catch (err) {
    if (!(err instanceof ExpressionError)) throw err
    ctx.addIssue({ code: 'custom', path, message: `invalid expression: ${err.message}` })
  }
}

export const PolicyRuleSchema = z
  .object({
    name: z.string().min(1).max(100).optional(),
    match: PolicyMatchSchema.default({}),
    /** An expression over args, tool, connector, principal, roles… (docs/policy.md). */
    when: z.string().min(1).max(2000).optional(),
    decision: z.enum(['allow', 'deny', 'approve']),
    /** Shown to the caller on deny, and to approvers. */
    reason: z.string().max(500).optional(),
    /** Who may decide (decision: approve). Default: the approver role of the tenant. */
    approvers: z
      .object({
        role: Roles.optional(),
        principals: z.array(z.string().min(1).max(200)).max(100).optional(),
      })
      .strict()
      .optional(),
    /** How long an approval waits before it is rejected as expired (default: config approvalTimeoutMs). */
    timeout: DurationSchema.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.when) checkExpression(r.when, ctx, ['when'])
    if (r.decision !== 'approve' && (r.approvers || r.timeout))
      ctx.addIssue({
        code: 'custom',
        path: [r.approvers ? 'approvers' : 'timeout'],
        message: 'approvers and timeout apply to decision: approve only',
      })
  })

export const DETECTORS = ['email', 'phone', 'payment_card', 'iban', 'national_id', 'secret'] as const

export const RedactionSpecSchema = z
  .object({
    /** Which detectors run (default: all). */
    detectors: z
      .array(z.enum(DETECTORS))
      .min(1)
      .default([...DETECTORS]),
    /** National id formats for the `national_id` detector: a name and a regular expression. */
    national_ids: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z0-9_]{1,40}$/, 'must be 1–40 characters of [a-z0-9_]'),
            pattern: z
              .string()
              .min(1)
              .max(200)
              .refine((p) => {
                try {
                  new RegExp(p, 'u')
                  return true
                } catch {
                  return false
                }
              }, 'must be a valid regular expression'),
          })
          .strict(),
      )
      .max(50)
      .optional(),
    /** `mask` replaces a value with `[email]`; `hash` with `[email:1a2b3c4d5e6f]` (HMAC, stable per tenant). */
    mode: z.enum(['mask', 'hash']).default('mask'),
    /** What is redacted on the way through: arguments before they leave for the upstream, results before they reach the caller. */
    apply_to: z
      .array(z.enum(['arguments', 'results']))
      .min(1)
      .default(['arguments', 'results']),
    /** Only calls matching this (default: every call of the tenant). */
    match: PolicyMatchSchema.omit({ args: true }).optional(),
  })
  .strict()

const Per = z.enum(['tenant', 'user', 'agent'])

export const BudgetSpecSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'must be 1–49 characters of [A-Za-z0-9_-]'),
    /** Whose spending is counted: the tenant's, each user's (agents count for the user they act for), or each agent's. */
    per: Per,
    window: z.enum(['minute', 'hour', 'day', 'month', 'total']).default('day'),
    tool_calls: z.number().int().positive().optional(),
    /** Model tokens (prompt + completion). */
    tokens: z.number().int().positive().optional(),
    /** Model cost in US dollars, priced by config `modelPrices`. */
    cost_usd: z.number().positive().max(1_000_000).optional(),
    /** Which tool calls count against tool_calls (default: all). */
    match: PolicyMatchSchema.omit({ args: true }).optional(),
  })
  .strict()
  .refine((b) => b.tool_calls !== undefined || b.tokens !== undefined || b.cost_usd !== undefined, {
    message: 'a budget sets at least one of tool_calls, tokens, cost_usd',
  })

export const RateLimitSpecSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'must be 1–49 characters of [A-Za-z0-9_-]'),
    per: Per,
    /** Sustained calls per minute (a token bucket refilled continuously). */
    per_minute: z.number().int().positive().max(1_000_000),
    /** Bucket size: calls allowed at once after a quiet period (default per_minute). */
    burst: z.number().int().positive().max(1_000_000).optional(),
    match: PolicyMatchSchema.omit({ args: true }).optional(),
  })
  .strict()

export const PolicySpecSchema = z
  .object({
    description: z.string().max(2000).optional(),
    /** Applies to every tenant (operators only); `match.tenant` then selects tenants. */
    global: z.boolean().default(false),
    rules: z.array(PolicyRuleSchema).max(1000).default([]),
    redaction: RedactionSpecSchema.optional(),
    budgets: z.array(BudgetSpecSchema).max(100).default([]),
    rate_limits: z.array(RateLimitSpecSchema).max(100).default([]),
  })
  .strict()

/** Whether `tz` is an IANA time zone name this runtime knows (`UTC`, `Europe/Berlin`, …). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

/**
 * A cron expression in croner syntax: 5 fields (minute precision) or 6 (a leading seconds
 * field); nicknames such as `@hourly`; evaluated in `timezone`. Throws croner's message when invalid.
 */
export function compileCron(cron: string, timezone: string): Cron {
  return new Cron(cron, { timezone, mode: '5-or-6-parts', paused: true })
}

export const ScheduleSpecSchema = z
  .object({
    description: z.string().max(2000).optional(),
    /** croner syntax, 5 or 6 fields (seconds first when 6): `0 3 * * *`, `*\/10 * * * * *`, `@hourly`. */
    cron: z.string().min(1).max(200),
    /** IANA time zone the expression is read in (daylight saving included). */
    timezone: z.string().min(1).max(100).default('UTC'),
    /** The agent each tick runs; it must exist in the schedule's tenant. */
    agent: Name,
    /** The run's input (checked against the agent's schema when a tick starts the run). */
    input: z.record(z.string(), z.unknown()).default({}),
    enabled: z.boolean().default(true),
    /** While the schedule's previous run is still active: `skip` the tick, or `enqueue` a run behind it. */
    overlap: z.enum(['skip', 'enqueue']).default('skip'),
    /** Ticks missed while no gateway was running: `skip` them, or `run_once` for all of them together. */
    missed: z.enum(['skip', 'run_once']).default('skip'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (!isTimeZone(s.timezone)) {
      ctx.addIssue({
        code: 'custom',
        path: ['timezone'],
        message: `unknown time zone ${s.timezone}; use an IANA name such as UTC or Europe/Berlin`,
      })
      return
    }
    try {
      if (!compileCron(s.cron, s.timezone).nextRun())
        ctx.addIssue({ code: 'custom', path: ['cron'], message: 'the expression never fires' })
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        path: ['cron'],
        message: `invalid cron expression: ${(err as Error).message}`,
      })
    }
  })

export const SUPPORTED_KINDS = ['Tenant', 'Connector', 'Server', 'Agent', 'Policy', 'Schedule'] as const
export const LATER_KINDS = ['Bot'] as const

export const MetadataSchema = z
  .object({
    name: Name,
    tenant: Name.optional(),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .strict()

export const EnvelopeSchema = z
  .object({
    apiVersion: z.literal('gatehouse/v1', { error: 'apiVersion must be gatehouse/v1' }),
    kind: z.string(),
    metadata: MetadataSchema,
    spec: z.unknown().optional(),
  })
  .strict()

export type ConnectorSpec = z.infer<typeof ConnectorSpecSchema>

/** A connector whose calls carry each caller's own token (src/connections): builtin, or oauth2. */
export function isBrokered(spec: ConnectorSpec): boolean {
  return spec.transport === 'builtin' || spec.auth?.type === 'oauth2'
}
export type StdioConnectorSpec = z.infer<typeof StdioConnectorSchema>
export type HttpConnectorSpec = z.infer<typeof HttpConnectorSchema>
export type ServerSpec = z.infer<typeof ServerSpecSchema>
export type TenantSpec = z.infer<typeof TenantSpecSchema>
export type ToolFilter = z.infer<typeof ToolFilterSchema>
export type AgentSpec = z.infer<typeof AgentSpecSchema>
export type CodeAgentSpec = z.infer<typeof CodeAgentSchema>
export type LlmAgentSpec = z.infer<typeof LlmAgentSchema>
export type A2aAgentSpec = z.infer<typeof A2aAgentSchema>
export type PolicySpec = z.infer<typeof PolicySpecSchema>
export type PolicyRuleSpec = z.infer<typeof PolicyRuleSchema>
export type PolicyMatchSpec = z.infer<typeof PolicyMatchSchema>
export type RedactionSpec = z.infer<typeof RedactionSpecSchema>
export type BudgetSpec = z.infer<typeof BudgetSpecSchema>
export type RateLimitSpec = z.infer<typeof RateLimitSpecSchema>
export type ScheduleSpec = z.infer<typeof ScheduleSpecSchema>

export const SPEC_SCHEMAS = {
  Tenant: TenantSpecSchema,
  Connector: ConnectorSpecSchema,
  Server: ServerSpecSchema,
  Agent: AgentSpecSchema,
  Policy: PolicySpecSchema,
  Schedule: ScheduleSpecSchema,
} as const
