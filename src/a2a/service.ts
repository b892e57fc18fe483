import type { Logger } from '../log.js'
import type { AgentCatalog } from '../runs/agents.js'
import type { RunService } from '../runs/service.js'
import type { WebhookSender } from '../runs/webhooks.js'
import type { Store } from '../store/types.js'
import type { AuditWriter } from '../telemetry/audit.js'
import type { Telemetry } from '../telemetry/tracing.js'
import type { MasterKey } from '../vault/master-key.js'
import { A2aBindings } from './bindings.js'
import { A2aHandler } from './handler.js'
import { PushDispatcher } from './push.js'

export interface A2aServiceOptions {
  runs: RunService
  store: Store
  catalog: AgentCatalog
  /** The durable webhook outbox: push notifications are delivered through it. */
  webhooks: WebhookSender
  masterKey: MasterKey
  /** Keys that may unseal stored push credentials (rotation), primary first; default [masterKey]. */
  masterKeys?: readonly MasterKey[]
  audit: AuditWriter
  telemetry: Telemetry
  logger: Logger
  /** Comment lines on idle streams this often (the run streams' setting). */
  heartbeatMs: number
  /** How often the push dispatcher looks for new events (ms); default 250. */
  pushPollMs?: number
  /** Longest a blocking SendMessage waits (ms); default 10 minutes. */
  blockingWaitMs?: number
  /** The configured public URL (cards name it); default: the host each request used. */
  publicUrl?: string
  /** Issuers of accepted OIDC tokens, advertised in the cards' security schemes. */
  oidcIssuers?: readonly string[]
}

/** Every agent as an A2A server (docs/a2a.md): the handler over the Run API, its bindings, push delivery. */
export class A2aService {
  readonly handler: A2aHandler
  readonly bindings: A2aBindings
  private readonly push: PushDispatcher
  private readonly closing = new AbortController()

  constructor(o: A2aServiceOptions) {
    this.push = new PushDispatcher({
      store: o.store,
      webhooks: o.webhooks,
      masterKeys: o.masterKeys ?? [o.masterKey],
      logger: o.logger,
      ...(o.pushPollMs !== undefined ? { pollMs: o.pushPollMs } : {}),
    })
    this.handler = new A2aHandler({
      runs: o.runs,
      store: o.store,
      masterKey: o.masterKey,
      masterKeys: o.masterKeys ?? [o.masterKey],
      checkPushUrl: (url) => {
        o.webhooks.validateUrl(url)
      },
      audit: o.audit,
      logger: o.logger,
      closing: this.closing.signal,
      blockingWaitMs: o.blockingWaitMs ?? 10 * 60_000,
      cancelWaitMs: 5_000,
      pushWritten: () => this.push.kick(),
    })
    this.bindings = new A2aBindings({
      handler: this.handler,
      catalog: o.catalog,
      telemetry: o.telemetry,
      logger: o.logger,
      heartbeatMs: o.heartbeatMs,
      closing: this.closing.signal,
      ...(o.publicUrl ? { publicUrl: o.publicUrl } : {}),
      ...(o.oidcIssuers?.length ? { oidcIssuers: o.oidcIssuers } : {}),
    })
  }

  start(): void {
    this.push.start()
  }

  /** Ends open streams and stops the push dispatcher (before the webhook outbox closes). */
  async close(): Promise<void> {
    this.closing.abort()
    await this.push.close()
  }
}
