import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { generateApiKey, hashApiKey } from './auth/api-keys.js'
import { Authenticator } from './auth/authenticator.js'
import { parseConfig, type ConfigInput, type GatewayConfig } from './config.js'
import { systemContext } from './context.js'
import { GatewayError } from './errors.js'
import { adminRoutes } from './http/routes/admin.js'
import type { RouteDeps } from './http/routes/deps.js'
import { mcpRoutes } from './http/routes/mcp.js'
import { observeRoutes } from './http/routes/observe.js'
import { systemRoutes } from './http/routes/system.js'
import { Router, type Route } from './http/router.js'
import { createHttpServer } from './http/server.js'
import { createLogger, type Logger } from './log.js'
import { applyManifests } from './manifests/apply.js'
import { readManifestPath } from './manifests/parse.js'
import type { ConnectorSpec, ServerSpec } from './manifests/schema.js'
import { McpIngress } from './mcp/ingress.js'
import {
  allowAll,
  credentialStage,
  executeUpstream,
  noCredentials,
  observeStage,
  policyStage,
  scopeStage,
  type CredentialBroker,
  type PolicyDecider,
} from './pipeline/stages.js'
import { compose } from './pipeline/types.js'
import { Registry } from './registry.js'
import { openSqliteStore } from './store/sqlite/index.js'
import type { ResourceRecord, Store } from './store/types.js'
import { AuditWriter } from './telemetry/audit.js'
import { Metrics } from './telemetry/metrics.js'
import { Telemetry } from './telemetry/tracing.js'
import { loadMasterKey } from './vault/master-key.js'
import { SecretResolver } from './vault/secrets.js'

export interface StartOptions {
  /** Raw or already parsed config (parsing is idempotent). */
  config: ConfigInput
  logger?: Logger
  /** Seams for later issues (policy engine, token broker); defaults allow all / add nothing. */
  policy?: PolicyDecider
  credentials?: CredentialBroker
}

export interface GatewayHandle {
  url: string
  port: number
  config: GatewayConfig
  store: Store
  registry: Registry
  logger: Logger
  /** Every HTTP route, as data: the isolation tests iterate it so a new route is covered automatically. */
  routes: readonly Route[]
  /** Set when this start generated the bootstrap admin key (print it once). */
  generatedAdminKey?: string
  adminKeyFile: string
  /** Stops intake, drains, flushes audit and spans, stops upstream children, closes the store. */
  close(): Promise<void>
}

/** Builds and starts one gateway: the composition root, the only place that wires modules together. */
export async function startGateway(options: StartOptions): Promise<GatewayHandle> {
  const config = parseConfig(options.config)
  const logger = options.logger ?? createLogger(config.logLevel)
  if (config.databaseUrl) {
    throw new GatewayError(
      'not_supported',
      'GATEHOUSE_DATABASE_URL (PostgreSQL) is not supported yet by this version; unset it to use the embedded SQLite store',
    )
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  const masterKey = loadMasterKey(config.dataDir)
  const store = openSqliteStore({ path: join(config.dataDir, 'gatehouse.db') })
  const op = systemContext('default')
  await store.tenants.ensure(op, 'default')
  const { generatedAdminKey, adminKeyFile } = await bootstrapAdminKey(store, config)

  const metrics = new Metrics()
  const telemetry = new Telemetry({ spans: store.spans, logger })
  const audit = new AuditWriter({
    store: store.audit,
    logger,
    mode: config.auditMode,
    flushMs: config.auditFlushMs,
  })
  const authenticator = new Authenticator({ keys: store.keys })
  const secrets = new SecretResolver({ masterKeys: [masterKey] })

  const registry = new Registry({
    secrets,
    logger,
    metrics,
    timeoutMs: config.upstreamTimeoutMs,
    // The ingress exists before any list can change: registry.load runs after it is built.
    onListChanged: (tenant, kind) => ingress.listChanged(tenant, kind),
    onUpstreamNotification: (tenant, _c, method, params) =>
      ingress?.upstreamNotification(tenant, method, params),
  })
  const callTool = compose(
    [
      observeStage({ telemetry, metrics, audit }),
      scopeStage,
      policyStage(options.policy ?? allowAll),
      credentialStage(options.credentials ?? noCredentials),
    ],
    executeUpstream,
  )
  const ingress = new McpIngress({ registry, logger, callTool, maxBodyBytes: config.maxBodyBytes })

  const reload = async () => registry.load(await store.resources.list(op, undefined, { allTenants: true }))
  if (config.manifests.length) {
    const sources = config.manifests.flatMap((m) => readManifestPath(m))
    await applyManifests(op, store, sources)
  }
  await reload()

  let ready = false
  const deps: RouteDeps = {
    store,
    authenticator,
    audit,
    metrics,
    logger,
    reload,
    describe: (r) => describe(r, registry),
    assertNotReferenced: async (ctx, connector) => {
      const servers = await store.resources.list(ctx, 'Server')
      const user = servers.find((s) =>
        (s.spec as ServerSpec).connectors.some((c) => (typeof c === 'string' ? c : c.name) === connector),
      )
      if (user)
        throw new GatewayError(
          'conflict',
          `connector ${connector} is used by server ${user.name}; change or delete the server first`,
        )
    },
  }
  const router = new Router([
    ...systemRoutes({ store, metrics, isReady: () => ready }),
    ...mcpRoutes({ ingress, registry }),
    ...adminRoutes(deps),
    ...observeRoutes(deps),
  ])
  const server = createHttpServer({
    router,
    authenticator,
    metrics,
    logger,
    maxBodyBytes: config.maxBodyBytes,
    guard: {
      listenHost: config.host,
      allowedOrigins: config.allowedOrigins,
      allowedHosts: config.allowedHosts,
    },
    isReady: () => ready,
  })
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => resolve())
  }).catch(async (err: NodeJS.ErrnoException) => {
    await registry.close()
    await store.close()
    throw new GatewayError(
      'unavailable',
      `cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`,
    )
  })
  ready = true
  const port = (server.address() as AddressInfo).port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  logger.info({ port, host: config.host }, 'gatehouse listening')

  let closing: Promise<void> | undefined
  return {
    url: `http://${host}:${port}`,
    port,
    config,
    store,
    registry,
    logger,
    routes: router.routes,
    ...(generatedAdminKey ? { generatedAdminKey } : {}),
    adminKeyFile,
    close: () =>
      (closing ??= (async () => {
        ready = false
        const stopped = new Promise<void>((r) => server.close(() => r()))
        await ingress.close()
        // In-flight requests get a grace period; keep-alive connections are closed as they go idle.
        const sweep = setInterval(() => server.closeIdleConnections(), 50)
        server.closeIdleConnections()
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 5000).unref())])
        clearInterval(sweep)
        server.closeAllConnections()
        await registry.close()
        await audit.close()
        await telemetry.close()
        await store.close()
      })()),
  }
}

/** GATEHOUSE_ADMIN_KEY, else DATA/admin.key, else a new key written there (mode 0600) and reported once. */
async function bootstrapAdminKey(
  store: Store,
  config: GatewayConfig,
): Promise<{ generatedAdminKey?: string; adminKeyFile: string }> {
  const op = systemContext('default')
  const adminKeyFile = join(config.dataDir, 'admin.key')
  if (config.adminKey) {
    await store.keys.upsertBootstrap(op, hashApiKey(config.adminKey))
    return { adminKeyFile }
  }
  if (existsSync(adminKeyFile)) {
    const mode = statSync(adminKeyFile).mode & 0o777
    if (mode & 0o077) {
      throw new GatewayError(
        'bad_request',
        `${adminKeyFile} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${adminKeyFile}`,
      )
    }
    const key = readFileSync(adminKeyFile, 'utf8').trim()
    if (key.length < 16)
      throw new GatewayError(
        'bad_request',
        `${adminKeyFile} does not hold a valid key; delete it to generate a new one`,
      )
    await store.keys.upsertBootstrap(op, hashApiKey(key))
    return { adminKeyFile }
  }
  const key = generateApiKey()
  writeFileSync(adminKeyFile, key + '\n', { mode: 0o600, flag: 'wx' })
  await store.keys.upsertBootstrap(op, hashApiKey(key))
  return { generatedAdminKey: key, adminKeyFile }
}

/** The admin view of a resource: its spec (secret references only, never values) plus live status. */
function describe(r: ResourceRecord, registry: Registry): Record<string, unknown> {
  const base: Record<string, unknown> = {
    kind: r.kind,
    tenant: r.tenant,
    name: r.name,
    spec: r.spec,
    generation: r.generation,
    updated_at: r.updatedAt,
  }
  if (r.kind === 'Connector') {
    const spec = r.spec as ConnectorSpec
    base.prefix = spec.prefix ?? r.name
    base.status = registry.status(r.tenant, r.name) ?? { status: 'idle' }
  }
  return base
}
