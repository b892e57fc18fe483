import { z } from 'zod'

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
  z.object({ type: z.literal('oauth2') }).loose(),
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
    url: z.url({ protocol: /^https?$/, error: 'must be an http or https URL' }),
    headers: z.record(z.string(), SecretField).optional(),
    /** Which protocol era to speak; `auto` tries 2026-07-28 and falls back to 2025-11-25 sessions. */
    protocol: z.enum(['auto', '2025-11-25', '2026-07-28']).default('auto'),
  })
  .strict()

export const ConnectorSpecSchema = z
  .discriminatedUnion('transport', [StdioConnectorSchema, HttpConnectorSchema])
  .superRefine((spec, ctx) => {
    if (spec.auth?.type === 'oauth2') {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'type'],
        message: 'auth type oauth2 (per-user token brokering) is not supported yet; use none or static',
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

export const SUPPORTED_KINDS = ['Tenant', 'Connector', 'Server', 'Agent'] as const
export const LATER_KINDS = ['Policy', 'Schedule', 'Bot'] as const

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
export type StdioConnectorSpec = z.infer<typeof StdioConnectorSchema>
export type HttpConnectorSpec = z.infer<typeof HttpConnectorSchema>
export type ServerSpec = z.infer<typeof ServerSpecSchema>
export type TenantSpec = z.infer<typeof TenantSpecSchema>
export type ToolFilter = z.infer<typeof ToolFilterSchema>
export type AgentSpec = z.infer<typeof AgentSpecSchema>
export type CodeAgentSpec = z.infer<typeof CodeAgentSchema>
export type LlmAgentSpec = z.infer<typeof LlmAgentSchema>
export type A2aAgentSpec = z.infer<typeof A2aAgentSchema>

export const SPEC_SCHEMAS = {
  Tenant: TenantSpecSchema,
  Connector: ConnectorSpecSchema,
  Server: ServerSpecSchema,
  Agent: AgentSpecSchema,
} as const
