import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { GatewayError } from './errors.js'

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
