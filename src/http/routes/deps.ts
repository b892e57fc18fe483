import type { Authenticator } from '../../auth/authenticator.js'
import type { CallContext } from '../../context.js'
import type { Logger } from '../../log.js'
import type { Store, ResourceRecord } from '../../store/types.js'
import type { AuditWriter } from '../../telemetry/audit.js'
import type { Metrics } from '../../telemetry/metrics.js'

/** What REST route factories need from the gateway; one typed object, documented per field. */
export interface RouteDeps {
  store: Store
  authenticator: Authenticator
  audit: AuditWriter
  metrics: Metrics
  logger: Logger
  /** Re-reads resources into the runtime registry after a write. */
  reload(): Promise<void>
  /** The public view of a resource, with generation and update time (connectors add live status; never secrets). */
  describe(r: ResourceRecord): Record<string, unknown>
  /** Throws conflict when a Server still selects this connector. */
  assertNotReferenced(ctx: CallContext, connector: string): Promise<void>
}
