import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { generateApiKey, hashApiKey } from './auth/api-keys.js'
import { createAuth } from './auth/setup.js'
import { parseConfig, type ConfigInput, type GatewayConfig } from './config.js'
import { systemContext } from './context.js'
import { GatewayError } from './errors.js'
import { adminRoutes } from './http/routes/admin.js'
import type { RouteDeps } from './http/routes/deps.js'
import { mcpRoutes } from './http/routes/mcp.js'
import { observeRoutes } from './http/routes/observe.js'
import { storeRoutes } from './http/routes/store.js'
import { systemRoutes } from './http/routes/system.js'
import { oauthMetadataRoutes } from './http/routes/oauth-metadata.js'
import { Router, type Route } from './http/router.js'
import { createHttpServer } from './http/server.js'
import { createLogger, type Logger } from './log.js'
import { applyManifests } from './manifests/apply.js'
import { TokenBroker } from './connections/broker.js'
import { BrokeredUpstream } from './connections/upstream.js'
import { connectionRoutes } from './http/routes/connections.js'
import { readManifestPath } from './manifests/parse.js'
import type { ConnectorSpec, ServerSpec } from './manifests/schema.js'
import { McpIngress } from './mcp/ingress.js'
import { sessionSweepJob } from './mcp/sessions.js'
import {
  credentialStage,
  executeUpstream,
  observeStage,
  policyStage,
  scopeStage,
  type CredentialBroker,
  type PolicyDecider,
} from './pipeline/stages.js'
import { compose } from './pipeline/types.js'
import { Registry } from './registry.js'
import { llmAgent } from './agents/llm.js'
import { a2aAgent } from './agents/a2a.js'
import type { ToolInfo, ToolResult } from './agents/define.js'
import { runRoutes } from './http/routes/runs.js'
import { a2aRoutes } from './http/routes/a2a.js'
import { A2aService } from './a2a/service.js'
import { tracedA2aAgents } from './a2a/trace.js'
import { approvalRoutes } from './http/routes/approvals.js'
import { slackRoutes } from './http/routes/slack.js'
import { scheduleRoutes } from './http/routes/schedules.js'
import { systemJobs } from './schedules/jobs.js'
import { Scheduler } from './schedules/scheduler.js'
import { SlackApprovals } from './policy/slack.js'
import { ApprovalService } from './policy/approvals.js'
import { PolicyEngine } from './policy/engine.js'
import { Limits } from './policy/limits.js'
import { Redactor } from './policy/redact.js'
import type { Decision } from './policy/rules.js'
import type { ExposedTool } from './registry.js'
import { AgentCatalog } from './runs/agents.js'
import { memoryFor } from './runs/context.js'
import { RunEngine } from './runs/engine.js'
import { AgentTools } from './runs/mcp-tools.js'
import { McpTasks } from './runs/mcp-tasks.js'
import { EventHub } from './runs/hub.js'
import { LocalNotifier, type Notifier } from './runs/notifier.js'
import { PgNotifier } from './store/pg/notify.js'
import { RunService, runView } from './runs/service.js'
import { sealWebhookSecret, WebhookSender, webhookTenantSecret } from './runs/webhooks.js'
import { UpstreamRpcError } from './upstream/rpc.js'
import type { CallContext } from './context.js'
import type { RunRecord } from './store/runs.js'
import { createHmac, randomUUID } from 'node:crypto'
import { openPgStore } from './store/pg/index.js'
import { openSqliteStore } from './store/sqlite/index.js'
import type { ResourceRecord, Store } from './store/types.js'
import { AuditWriter } from './telemetry/audit.js'
import { CallLog } from './telemetry/call-log.js'
import { Metrics } from './telemetry/metrics.js'
import { Telemetry } from './telemetry/tracing.js'
import { localKeyProvider, type KeyProvider } from './vault/envelope.js'
import { loadMasterKeys } from './vault/master-key.js'
import { SecretResolver } from './vault/secrets.js'

export interface StartOptions {
  /** Raw or already parsed config (parsing is idempotent). */
  config: ConfigInput
  logger?: Logger
  /** Seams for later issues (policy engine, token broker); defaults allow all / add nothing. */
  policy?: PolicyDecider
  credentials?: CredentialBroker
  /** Wraps the data keys of envelope-encrypted secrets (connections); default: the local master keys. */
  keyProvider?: KeyProvider
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
  /** The envelope vault's key provider (StartOptions.keyProvider, or the local master keys). */
  keyProvider: KeyProvider
  /** Stops intake, drains, flushes audit and spans, stops upstream children, closes the store. */
  close(): Promise<void>
}

/** Builds and starts one gateway: the composition root, the only place that wires modules together. */
export async function startGateway(options: StartOptions): Promise<GatewayHandle> {
  const config = parseConfig(options.config)
  const logger = options.logger ?? createLogger(config.logLevel)
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 })
  // Primary first; previous keys still open what is sealed under them (docs/operations.md).
  const masterKeys = loadMasterKeys(config.dataDir)
  const masterKey = masterKeys[0]!
  const keyProvider = options.keyProvider ?? localKeyProvider(masterKeys)
  // GATEHOUSE_DATABASE_URL: PostgreSQL, shared by replicas; otherwise the embedded SQLite file.
  const store: Store = config.databaseUrl
    ? await openPgStore({
        url: config.databaseUrl,
        onError: (err) => logger.warn({ err: err.message }, 'PostgreSQL connection error'),
      })
    : openSqliteStore({ path: join(config.dataDir, 'gatehouse.db') })
  const op = systemContext('default')
  await store.tenants.ensure(op, 'default')
  const { generatedAdminKey, adminKeyFile } = await bootstrapAdminKey(store, config)

  const metrics = new Metrics()
  // Audit rows and spans never keep PII or secrets (docs/policy.md "Redaction").
  const redactionKey = createHmac('sha256', masterKey.key).update('gatehouse/redaction').digest('hex')
  const scrubber =
    config.telemetryRedaction === 'off'
      ? undefined
      : new Redactor({ mode: config.telemetryRedaction, hashKey: redactionKey })
  const scrub = scrubber?.memoized()
  const telemetry = new Telemetry({ spans: store.spans, logger, ...(scrub ? { redact: scrub } : {}) })
  const redaction = scrubber && scrub ? { redact: scrub, redactOnce: (s: string) => scrubber.string(s) } : {}
  const audit = new AuditWriter({
    store: store.audit,
    logger,
    mode: config.auditMode,
    flushMs: config.auditFlushMs,
    ...redaction,
  })
  // Tool calls' audit rows and spans: recorded compactly, written with the same durability window.
  const calls = new CallLog({
    store: store.calls,
    logger,
    flushMs: config.auditFlushMs,
    sync: config.auditMode === 'sync',
    ...redaction,
  })
  const auth = await createAuth({ config, store, audit, logger })
  const authenticator = auth.authenticator
  const secrets = new SecretResolver({ masterKeys })

  // Token brokering (docs/connections.md): each user's own upstream account per oauth2 connector.
  const broker: TokenBroker = new TokenBroker({
    store,
    keys: keyProvider,
    masterKeys,
    secrets,
    audit,
    logger,
    publicUrl: () => auth.resource.publicUrl,
    connector: (tenant, name): ConnectorSpec | undefined => registry.connection(tenant, name)?.spec,
    onConnectionsChanged: (tenant, connector) => registry.connectionsChanged(tenant, connector),
    allowPrivateNetwork: config.allowPrivateNetwork,
    refreshSkewMs: config.tokenRefreshSkewMs,
  })
  const registry: Registry = new Registry({
    secrets,
    logger,
    metrics,
    timeoutMs: config.upstreamTimeoutMs,
    brokered: (r, onListChanged): BrokeredUpstream =>
      new BrokeredUpstream({
        tenant: r.tenant,
        name: r.name,
        spec: r.spec as ConnectorSpec,
        secrets,
        logger: logger.child({ connector: r.name, tenant: r.tenant }),
        timeoutMs: config.upstreamTimeoutMs,
        onListChanged,
        onNotification: (method, params) => ingress?.upstreamNotification(r.tenant, method, params),
        listingCredentials: () => broker.listingCredentials(r.tenant, r.name),
      }),
    // The ingress exists before any list can change: registry.load runs after it is built.
    onListChanged: (tenant, kind) => ingress.listChanged(tenant, kind),
    onUpstreamNotification: (tenant, _c, method, params) =>
      ingress?.upstreamNotification(tenant, method, params),
    // Built below; the registry only lists tools after the first reload.
    agentTools: (tenant, server) => agentTools.list(tenant, server),
  })
  // Policy (docs/policy.md): rules, approvals, budgets and rate limits, redaction.
  const approvals = new ApprovalService({
    store: store.approvals,
    audit,
    logger,
    defaultTimeoutMs: config.approvalTimeoutMs,
    sweepMs: config.approvalSweepMs,
    tool: async (tenant, exposed): Promise<ExposedTool | undefined> =>
      (await registry.toolIndex(tenant)).tools.get(exposed),
    evaluate: (ctx, tool, args): Decision => policy.evaluate(ctx, tool, args),
  })
  const slack = config.slack
    ? new SlackApprovals({
        ...(config.slack.apiUrl ? { apiUrl: config.slack.apiUrl } : {}),
        token: requiredEnv(config.slack.tokenEnv, 'slack.tokenEnv'),
        signingSecret: requiredEnv(config.slack.signingSecretEnv, 'slack.signingSecretEnv'),
        channels: config.slack.channels,
        users: config.slack.users,
        toleranceSeconds: config.slack.toleranceSeconds,
        logger,
        store: store.approvals,
      })
    : undefined
  slack?.attach(approvals)
  const policy = new PolicyEngine({
    approvals,
    limits: new Limits({ store: store.limits, audit, prices: config.modelPrices }),
    hashKey: redactionKey,
  })
  const callTool = compose(
    [
      observeStage({ telemetry, metrics, calls }),
      scopeStage,
      policyStage(options.policy ?? policy),
      credentialStage(options.credentials ?? broker),
    ],
    executeUpstream,
  )

  // Durable runs: agents call tools through the same pipeline as every other ingress.
  const runToolCall = async (
    ctx: CallContext,
    name: string,
    args: Record<string, unknown>,
    meta: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<ToolResult> => {
    const tool = (await registry.toolIndex(ctx.tenant)).tools.get(name)
    if (!tool) {
      const down = registry.unavailableFor(ctx.tenant, undefined, name)
      throw down
        ? new GatewayError(
            'upstream_unavailable',
            `connector ${down.name} is unavailable: ${down.lastError ?? down.status}`,
          )
        : new GatewayError('not_found', `unknown tool ${name}`)
    }
    try {
      return (await callTool({ ctx, tool, args, extra: { _meta: meta }, headers: {}, signal })) as ToolResult
    } catch (err) {
      if (err instanceof UpstreamRpcError) throw new GatewayError('upstream_error', `${name}: ${err.message}`)
      throw err
    }
  }
  const listTools = async (ctx: CallContext): Promise<ToolInfo[]> =>
    policy.visible(ctx, [...(await registry.toolIndex(ctx.tenant)).tools.values()]).map((t) => ({
      name: t.exposed,
      ...(typeof t.def.description === 'string' ? { description: t.def.description } : {}),
      inputSchema: (t.def.inputSchema as Record<string, unknown> | undefined) ?? { type: 'object' },
    }))
  const hub = new EventHub()
  // Run wake-ups across replicas (PostgreSQL LISTEN/NOTIFY); in-process only on SQLite.
  let notifier: Notifier = new LocalNotifier()
  if (config.databaseUrl) {
    const pgNotifier = new PgNotifier({
      url: config.databaseUrl,
      onError: (err) => logger.warn({ err: err.message }, 'PostgreSQL LISTEN connection error'),
    })
    await pgNotifier.start()
    notifier = pgNotifier
  }
  const catalog = new AgentCatalog({
    secrets,
    logger,
    builders: { llm: llmAgent, a2a: tracedA2aAgents(a2aAgent, { telemetry, audit }) },
  })
  const webhooks = new WebhookSender({
    outbox: store.webhooks,
    masterKey,
    masterKeys,
    logger,
    allowPrivateNetwork: config.allowPrivateNetwork,
  })
  /** Every run that ends (worker, cancel, multitask): an audit row, and its webhook if it asked for one. */
  const onTerminal = (run: RunRecord): void => {
    void audit.write({
      id: randomUUID(),
      tenant: run.tenant,
      at: new Date().toISOString(),
      principal: run.owner,
      principalKind: run.owner.split(':')[0] ?? 'unknown',
      action: 'run.end',
      target: `${run.agent}/${run.id}`,
      outcome: run.status === 'succeeded' ? 'ok' : run.status === 'cancelled' ? 'cancelled' : 'error',
      ...(run.error ? { errorCode: run.error.code } : {}),
      requestId: run.id,
    })
    if (!run.webhook) return
    void (async () => {
      const hook = await store.runs.webhookOf(run.id)
      if (!hook) return
      await webhooks.enqueue(systemContext(run.tenant), {
        id: `whd_run_${run.id}`,
        url: hook.url,
        runId: run.id,
        payload: runView(run),
        ...(hook.secret ? { secret: { sealed: hook.secret } } : {}),
      })
    })().catch((err: unknown) => logger.error({ err, run: run.id }, 'cannot enqueue run webhook'))
  }
  const engine = new RunEngine({
    store: store.runs,
    catalog,
    logger,
    telemetry,
    concurrency: config.runConcurrency,
    leaseMs: config.runLeaseMs,
    pollMs: config.runPollMs,
    published: (id) => notifier.publish('events', id),
    released: (ids) => ids.forEach((id) => notifier.publish('wake', id)),
    onTerminal: (run) => onTerminal(run),
    host: {
      callTool: runToolCall,
      listTools,
      memory: (ctx) => memoryFor(store.memory, ctx),
      usage: (ctx, u): Promise<void> => policy.recordUsage(ctx, u),
      admitStep: (ctx): Promise<void> => policy.admitSpend(ctx),
    },
  })
  const runs = new RunService({
    store: store.runs,
    catalog,
    engine,
    hub,
    notifier,
    audit,
    logger,
    heartbeatMs: config.streamHeartbeatMs,
    onTerminal,
    onResume: (ctx, run, value): Promise<RunRecord | undefined> => approvals.onResume(ctx, run, value),
    admit: (ctx, agent): Promise<void> => policy.admitRunStart(ctx, agent),
    pollMs: config.runPollMs,
    webhooks: {
      check: async (url) => {
        webhooks.validateUrl(url)
      },
      sealSecret: (secret) => sealWebhookSecret(masterKey, secret),
    },
  })

  notifier.subscribe('events', (id) => hub.publish(id))
  notifier.subscribe('wake', () => engine.wake())
  // A cancel requested on any replica aborts the run where it executes (no wait for a heartbeat).
  notifier.subscribe('cancel', (id) => engine.abortLocal(id, 'cancel', 'cancelled by request'))

  const agentTools = new AgentTools(catalog, runs)
  const ingress = new McpIngress({
    registry,
    logger,
    callTool,
    maxBodyBytes: config.maxBodyBytes,
    tasks: new McpTasks(runs),
    visibleTools: (ctx, tools) => policy.visible(ctx, tools),
    masterKeys,
    // Replicas share 2025-era sessions (and their SSE events) through the store.
    ...(config.databaseUrl ? { shared: { store: store.sessions, notifier } } : {}),
  })
  approvals.attachRuns(runs)
  // Schedules (docs/schedules.md): each cron tick starts one run across replicas; the gateway's own
  // cluster-wide periodic jobs (memory TTL sweep, tick pruning) are claimed the same way.
  const scheduler = new Scheduler({
    store,
    runs,
    audit,
    logger,
    owner: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    jobs: [
      ...systemJobs(store, logger),
      ...(config.databaseUrl ? [sessionSweepJob(store.sessions, logger)] : []),
    ],
  })

  const reload = async () => {
    const resources = await store.resources.list(op, undefined, { allTenants: true })
    catalog.load(resources)
    policy.load(resources)
    scheduler.load(resources)
    await registry.load(resources)
  }
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
  const a2a = new A2aService({
    runs,
    store,
    catalog,
    webhooks,
    masterKey,
    masterKeys,
    audit,
    telemetry,
    logger,
    heartbeatMs: config.streamHeartbeatMs,
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    oidcIssuers: config.oidc.issuers.filter((i) => i.advertise).map((i) => i.issuer),
  })
  const router = new Router([
    ...systemRoutes({ store, metrics, isReady: () => ready }),
    ...oauthMetadataRoutes(auth.resource),
    ...mcpRoutes({ ingress, registry }),
    ...adminRoutes(deps),
    ...observeRoutes(deps),
    ...storeRoutes(deps),
    ...runRoutes({
      runs,
      store: store.runs,
      catalog,
      webhookSecret: (tenant) => webhookTenantSecret(masterKey, tenant),
    }),
    ...a2aRoutes(a2a),
    ...approvalRoutes({ approvals }),
    ...slackRoutes({ slack }),
    ...scheduleRoutes({ store, scheduler, audit, reload }),
    ...connectionRoutes({ store, broker, masterKeys }),
  ])
  const server = createHttpServer({
    router,
    auth,
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
    await notifier.close()
    await store.close()
    throw new GatewayError(
      'unavailable',
      `cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`,
    )
  })
  engine.start()
  webhooks.start()
  a2a.start()
  approvals.start()
  scheduler.start()
  ready = true
  const port = (server.address() as AddressInfo).port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  auth.resource.setListenUrl(`http://${host}:${port}`)
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
    keyProvider,
    close: () =>
      (closing ??= (async () => {
        ready = false
        const stopped = new Promise<void>((r) => server.close(() => r()))
        await ingress.close()
        runs.close()
        await a2a.close()
        await scheduler.close()
        // Running agents reach a step boundary and give their leases back before upstreams stop.
        await engine.drain(config.drainTimeoutMs)
        await notifier.close()
        await webhooks.close()
        await approvals.close()
        // In-flight requests get a grace period; keep-alive connections are closed as they go idle.
        const sweep = setInterval(() => server.closeIdleConnections(), 50)
        server.closeIdleConnections()
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 5000).unref())])
        clearInterval(sweep)
        server.closeAllConnections()
        await registry.close()
        await broker.close()
        await calls.close()
        await audit.close()
        await telemetry.close()
        await store.close()
      })()),
  }
}

/** A secret the config names by environment variable; a clear error when it is not set. */
function requiredEnv(name: string, field: string): string {
  const v = process.env[name]
  if (!v)
    throw new GatewayError(
      'bad_request',
      `config ${field} names ${name}, which is not set in the environment`,
    )
  return v
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
