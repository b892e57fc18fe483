import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ROLES } from './context.js'
import { GatewayError } from './errors.js'
import { NAME_RE } from './manifests/schema.js'

/** Asymmetric JWS algorithms only: HMAC (HS*) would let anyone holding a shared secret mint tokens, and `none` is never allowed. */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const

/** An OAuth scope token (RFC 6749 §3.3): printable ASCII without space, `"` or `\\`. */
export const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]{1,200}$/
const Scope = z
  .string()
  .regex(SCOPE_RE, 'a scope is 1–200 printable ASCII characters without spaces, " or \\')

/** One trusted OpenID Connect / OAuth 2.1 authorization server whose JWT access tokens are accepted (docs/auth.md). */
export const IssuerSchema = z
  .object({
    /** Exactly the `iss` claim of its tokens (and the issuer of its discovery document). */
    issuer: z.url({ protocol: /^https?$/, error: 'issuer must be an http or https URL' }),
    /** Short name that namespaces subjects (`{id}:{sub}`); default: derived from the issuer URL. Changing it orphans what users own. */
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, 'id is 1–32 characters of [A-Za-z0-9_-]')
      .optional(),
    /** Accepted `aud` values instead of the gateway's own resource URLs (for IdPs that cannot mint them, e.g. Entra `api://…`). */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** JWKS URL; default: `jwks_uri` from the issuer's discovery document. */
    jwksUri: z.url({ protocol: /^https?$/, error: 'jwksUri must be an http or https URL' }).optional(),
    /** Every user of this issuer belongs to this tenant… */
    tenant: z.string().regex(NAME_RE, 'invalid tenant name').optional(),
    /** …or this claim (a name or a dotted path) names the user's tenant. */
    tenantClaim: z.string().min(1).optional(),
    /** Claim (a name or a dotted path, e.g. `realm_access.roles`) holding the user's roles. */
    rolesClaim: z.string().min(1).default('roles'),
    /** Maps IdP role or group names to Gatehouse roles; without it, values equal to a role name count. */
    roleMap: z.record(z.string(), z.enum(ROLES as [string, ...string[]])).optional(),
    /** The role of a user whose token names none; `none` refuses such users (403). */
    defaultRole: z.enum(['none', ...ROLES] as [string, ...string[]]).default('member'),
    /** Allowed signing algorithms (asymmetric only). */
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
    /** Tolerance for exp/nbf/iat against this gateway's clock. */
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    /** false: tokens of this issuer are not checked for route scopes (IdPs that cannot issue custom scopes). */
    requireScopes: z.boolean().default(true),
    /** List it in `authorization_servers` of the protected-resource metadata. */
    advertise: z.boolean().default(true),
  })
  .strict()
  .refine((i) => (i.tenant === undefined) !== (i.tenantClaim === undefined), {
    message:
      'set exactly one of tenant (every user of this issuer is in that tenant) or tenantClaim (the claim naming the tenant)',
  })

export type IssuerConfig = z.infer<typeof IssuerSchema>

/** Everything a running gateway is configured with; parsed once at start-up. */
export const ConfigSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(7420),
    dataDir: z.string().min(1).default('./.gatehouse'),
    manifests: z.array(z.string().min(1)).default([]),
    databaseUrl: z.string().optional(),
    adminKey: z.string().min(16, 'GATEHOUSE_ADMIN_KEY must be at least 16 characters').optional(),
    /** Largest request body accepted on any route. */
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024),
    /** Extra Origin values allowed on /mcp besides loopback origins (DNS-rebinding guard). */
    allowedOrigins: z.array(z.string()).default([]),
    /** Extra Host header values allowed besides loopback names and the listen host. */
    allowedHosts: z.array(z.string()).default([]),
    /** `batch` writes audit rows off the hot path every `auditFlushMs`; `sync` before the reply. */
    auditMode: z.enum(['batch', 'sync']).default('batch'),
    auditFlushMs: z.number().int().positive().default(200),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Upper bound on one upstream call unless the connector sets its own. */
    upstreamTimeoutMs: z.number().int().positive().default(60_000),
    /** Let URLs learned at run time (webhooks, push targets) reach private, loopback and link-local addresses. */
    allowPrivateNetwork: z.boolean().default(false),
    /** A user connection's access token is refreshed when it expires within this margin (docs/connections.md). */
    tokenRefreshSkewMs: z.number().int().min(0).max(3_600_000).default(60_000),
    /** Runs executing at once in this process. */
    runConcurrency: z.number().int().positive().max(10_000).default(64),
    /** Run lease: a run whose owner stops renewing it is taken over after this long (dead owners on this host at once). */
    runLeaseMs: z.number().int().min(300).default(10_000),
    /** How often to look for runs queued by other processes. */
    runPollMs: z.number().int().min(10).default(500),
    /** Keep-alive comment interval on idle run event streams. */
    streamHeartbeatMs: z.number().int().min(50).default(15_000),
    /** SIGTERM: how long running agents get to reach a step boundary before their leases are released anyway. */
    drainTimeoutMs: z.number().int().min(0).default(10_000),
    /**
     * The gateway's public base URL (scheme, host, port, optional path prefix). Resource URLs are
     * built from it (`{publicUrl}/mcp`, …) and JWT audiences are checked against them.
     * Default: the listen address (`http://HOST:PORT`).
     */
    publicUrl: z
      .url({ protocol: /^https?$/, error: 'publicUrl must be an http or https URL' })
      .refine((u) => !/[?#]/.test(u), 'publicUrl must not have a query or fragment')
      .transform((u) => u.replace(/\/+$/, ''))
      .optional(),
    /** Trusted OIDC issuers whose JWT access tokens authenticate users (docs/auth.md). */
    oidc: z
      .object({ issuers: z.array(IssuerSchema).default([]) })
      .strict()
      .superRefine((o, ctx) => {
        const seen = new Set<string>()
        o.issuers.forEach((i, n) => {
          if (seen.has(i.issuer))
            ctx.addIssue({ code: 'custom', path: ['issuers', n, 'issuer'], message: 'issuer listed twice' })
          seen.add(i.issuer)
        })
        const ids = new Set<string>()
        o.issuers.forEach((i, n) => {
          if (i.id !== undefined && ids.has(i.id))
            ctx.addIssue({ code: 'custom', path: ['issuers', n, 'id'], message: 'issuer id used twice' })
          if (i.id !== undefined) ids.add(i.id)
        })
      })
      .prefault({}),
    /** OAuth resource-server settings: the scope each class of route needs, and what is advertised. */
    oauth: z
      .object({
        /** Scope a token needs per route class; null: none needed. */
        scopes: z
          .object({
            /** `/mcp` and `/mcp/{server}`. */
            mcp: Scope.nullable().default('mcp'),
            /** Everything under `/v1/admin/`. */
            admin: Scope.nullable().default('gatehouse:admin'),
            /** Every other authenticated route. */
            api: Scope.nullable().default(null),
          })
          .strict()
          .prefault({}),
        /** `scopes_supported` of the MCP endpoints' metadata; default: the mcp scope. */
        scopesSupported: z.array(Scope).optional(),
        /** `resource_name` in the metadata. */
        resourceName: z.string().min(1).max(200).default('Gatehouse'),
        /** `resource_documentation` in the metadata. */
        resourceDocumentation: z.url({ protocol: /^https?$/ }).optional(),
      })
      .strict()
      .prefault({}),
    /** Failed authentications per source address: a token bucket (burst, refill per minute); 429 once empty. */
    authFailureLimit: z
      .object({
        burst: z.number().int().min(1).default(30),
        perMinute: z.number().positive().default(30),
      })
      .strict()
      .prefault({}),
    /** Take the client address from the last X-Forwarded-For hop (only behind a proxy you run). */
    trustProxy: z.boolean().default(false),
    /** Policy approvals: how long one waits for a decision when its rule sets no timeout. */
    approvalTimeoutMs: z.number().int().min(1000).default(3_600_000),
    /** How often expired approvals are rejected and runs whose approval was decided are resumed. */
    approvalSweepMs: z.number().int().min(10).default(1000),
    /** Model prices for cost budgets: model name → US dollars per million input / output tokens. */
    modelPrices: z
      .record(
        z.string().min(1),
        z.object({ input_per_mtok: z.number().min(0), output_per_mtok: z.number().min(0) }).strict(),
      )
      .default({}),
    /** PII and secrets in audit rows, spans and logs: masked (`[email]`), hashed (`[email:1a2b…]`, default) or left (`off`). */
    telemetryRedaction: z.enum(['mask', 'hash', 'off']).default('hash'),
    /** Slack approvals (docs/policy.md): where requests are posted and how interactions are verified. */
    slack: z
      .object({
        /** Web API base URL (default https://slack.com/api/); tests point it at a fake. */
        apiUrl: z.url({ protocol: /^https?$/ }).optional(),
        /** Bot token: an environment variable name holding it. */
        tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
        /** Signing secret of the Slack app: an environment variable name holding it. */
        signingSecretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
        /** Channel per tenant (`default` key: every other tenant); a tenant without one gets no message. */
        channels: z.record(z.string(), z.string().min(1)),
        /**
         * Slack user id → who decides when that user clicks: a Gatehouse principal (`user:alice`),
         * its roles, and the tenants it may decide in. Unmapped Slack users cannot decide.
         */
        users: z
          .record(
            z.string().regex(/^[A-Z0-9]{2,32}$/, 'a Slack user id, e.g. U012AB3CD'),
            z
              .object({
                principal: z.string().regex(/^(user|service):.{1,200}$/, 'must be user:ID or service:ID'),
                roles: z.array(z.enum(ROLES as [string, ...string[]])).default(['approver']),
                tenants: z.array(z.string().regex(NAME_RE, 'invalid tenant name')).min(1),
              })
              .strict(),
          )
          .default({}),
        /** Oldest interaction timestamp accepted, in seconds (replay window). */
        toleranceSeconds: z.number().int().min(1).max(3600).default(300),
      })
      .strict()
      .optional(),
  })
  .strict()

export type GatewayConfig = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>

/** Parses a config file (YAML or JSON); keys as in ConfigSchema. */
export function readConfigFile(file: string): ConfigInput {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    throw new GatewayError('bad_request', `cannot read config file ${file}`)
  }
  const parsed: unknown = parseYaml(text)
  if (parsed === null || typeof parsed !== 'object')
    throw new GatewayError('bad_request', `${file}: expected a mapping`)
  return parsed as ConfigInput
}

/** Environment variables override the file; flags override both (merged by the caller). */
export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const out: ConfigInput = {}
  if (env.GATEHOUSE_DATABASE_URL) out.databaseUrl = env.GATEHOUSE_DATABASE_URL
  if (env.GATEHOUSE_ADMIN_KEY) out.adminKey = env.GATEHOUSE_ADMIN_KEY
  if (env.GATEHOUSE_MAX_BODY_BYTES) out.maxBodyBytes = Number(env.GATEHOUSE_MAX_BODY_BYTES)
  if (env.GATEHOUSE_LOG_LEVEL) out.logLevel = env.GATEHOUSE_LOG_LEVEL as GatewayConfig['logLevel']
  if (env.GATEHOUSE_AUDIT_MODE) out.auditMode = env.GATEHOUSE_AUDIT_MODE as GatewayConfig['auditMode']
  if (env.GATEHOUSE_DATA) out.dataDir = env.GATEHOUSE_DATA
  if (env.GATEHOUSE_PUBLIC_URL) out.publicUrl = env.GATEHOUSE_PUBLIC_URL
  if (env.GATEHOUSE_TRUST_PROXY) out.trustProxy = env.GATEHOUSE_TRUST_PROXY === '1'
  if (env.GATEHOUSE_ALLOW_PRIVATE_NETWORK)
    out.allowPrivateNetwork = env.GATEHOUSE_ALLOW_PRIVATE_NETWORK === '1'
  return out
}

export function parseConfig(input: ConfigInput): GatewayConfig {
  const res = ConfigSchema.safeParse(input)
  if (!res.success) {
    const problems = res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new GatewayError('bad_request', `invalid configuration: ${problems}`)
  }
  return { ...res.data, dataDir: resolve(res.data.dataDir) }
}
