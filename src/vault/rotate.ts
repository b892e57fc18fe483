import { systemContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { ConnectionRecord, ConnectionStore } from '../store/connections.js'
import type { ResourceStore } from '../store/types.js'
import {
  connectionAad,
  isEnvelopeString,
  oauthClientAad,
  rewrapEnvelope,
  rewrapString,
  type KeyProvider,
} from './envelope.js'

/**
 * Master-key rotation over the store (`gatehouse keys rotate-master`): every connection's data key
 * and every OAuth client secret's data key is re-wrapped under the provider's primary key. The
 * ciphertexts do not change, so nothing is ever decrypted to plaintext here. Idempotent: what is
 * already under the primary is left alone.
 */

export interface RotationReport {
  primaryId: string
  connections: { rewrapped: number; current: number; gone: number; failed: number }
  clients: { rewrapped: number; current: number; withoutSecret: number; failed: number }
  /** One line per record that could not be moved, naming it (never a secret). */
  failures: string[]
}

export interface RotateOptions {
  connections: ConnectionStore
  keys: KeyProvider
  /** Connections read per page (default 200). */
  pageSize?: number
  /** Attempts per connection that keeps changing under us (default 5). */
  attempts?: number
}

export async function rotateMaster({
  connections,
  keys,
  pageSize = 200,
  attempts = 5,
}: RotateOptions): Promise<RotationReport> {
  const report: RotationReport = {
    primaryId: keys.primaryId,
    connections: { rewrapped: 0, current: 0, gone: 0, failed: 0 },
    clients: { rewrapped: 0, current: 0, withoutSecret: 0, failed: 0 },
    failures: [],
  }
  let after: string | undefined
  for (;;) {
    const page = await connections.scan(after, pageSize)
    if (!page.length) break
    for (const rec of page) {
      try {
        report.connections[await rewrapConnection(connections, keys, rec, attempts)]++
      } catch (err) {
        report.connections.failed++
        report.failures.push(`connection ${rec.id} (${rec.tenant}/${rec.connector}): ${messageOf(err)}`)
      }
    }
    after = page[page.length - 1]!.id
  }
  for (const c of await connections.scanClients()) {
    if (c.sealedSecret === undefined) {
      report.clients.withoutSecret++
      continue
    }
    const name = `oauth client ${c.tenant}/${c.connector} at ${c.issuer}`
    try {
      if (!isEnvelopeString(c.sealedSecret))
        throw new GatewayError('internal', 'secret is not an envelope string')
      const next = await rewrapString(keys, c.sealedSecret, oauthClientAad(c))
      if (next === undefined) report.clients.current++
      else {
        await connections.updateClientSecret(c.tenant, c.connector, c.issuer, next)
        report.clients.rewrapped++
      }
    } catch (err) {
      report.clients.failed++
      report.failures.push(`${name}: ${messageOf(err)}`)
    }
  }
  return report
}

/** Compare-and-swap per row; a row that changed meanwhile is read again and retried. */
async function rewrapConnection(
  store: ConnectionStore,
  keys: KeyProvider,
  first: ConnectionRecord,
  attempts: number,
): Promise<'rewrapped' | 'current' | 'gone'> {
  let rec = first
  for (let i = 0; i < attempts; i++) {
    const next = await rewrapEnvelope(keys, rec.sealed, connectionAad(rec))
    if (!next) return 'current'
    if (await store.rewrap(rec.id, rec.version, next)) return 'rewrapped'
    const fresh = await store.get(systemContext(rec.tenant), rec.id)
    if (!fresh) return 'gone'
    rec = fresh
  }
  throw new GatewayError(
    'unavailable',
    `changed ${attempts} times while being re-wrapped; run rotate-master again`,
  )
}

function messageOf(err: unknown): string {
  return err instanceof GatewayError ? err.message : 'internal error'
}

/**
 * Manifest secrets (`{ sealed: "gh1.<keyId>.…" }`, from `gatehouse seal`) still sealed under a key
 * other than `primaryId`: rotate-master cannot re-seal them (their source is the operator's
 * manifest files), so it names them. Every tenant's resources.
 */
export async function staleManifestSecrets(
  resources: ResourceStore,
  primaryId: string,
): Promise<{ resource: string; path: string; keyId: string }[]> {
  const out: { resource: string; path: string; keyId: string }[] = []
  const all = await resources.list(systemContext(), undefined, { allTenants: true })
  for (const r of all) {
    walk(r.spec, 'spec', (path, keyId) => {
      if (keyId !== primaryId) out.push({ resource: `${r.tenant}/${r.kind}/${r.name}`, path, keyId })
    })
  }
  return out
}

function walk(v: unknown, path: string, found: (path: string, keyId: string) => void): void {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`, found))
  else if (v && typeof v === 'object') {
    const sealed = (v as { sealed?: unknown }).sealed
    const m = typeof sealed === 'string' ? /^gh1\.([^.]+)\./.exec(sealed) : null
    if (m) found(path, m[1]!)
    for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`, found)
  }
}
