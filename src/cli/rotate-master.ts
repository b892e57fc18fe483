import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { GatewayError } from '../errors.js'
import { openPgStore } from '../store/pg/index.js'
import { openSqliteStore } from '../store/sqlite/index.js'
import type { Store } from '../store/types.js'
import { localKeyProvider } from '../vault/envelope.js'
import { loadMasterKeys, PREVIOUS_KEYS_FILE, rotateMasterKeyFile } from '../vault/master-key.js'
import { rotateMaster, staleManifestSecrets, type RotationReport } from '../vault/rotate.js'
import { one, parseArgs } from './args.js'

/**
 * `gatehouse keys rotate-master [--data DIR] [--new-key]`: works on the store directly (SQLite in
 * DIR, or GATEHOUSE_DATABASE_URL), with the same master keys a gateway started there would load.
 * Procedure: docs/operations.md "Master keys and rotation".
 */
export async function runRotateMaster(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseArgs(argv, { command: 'keys rotate-master', values: ['data'], switches: ['new-key'] })
  const dataDir = resolve(one(args, 'data') ?? (env.GATEHOUSE_DATA || './.gatehouse'))
  const url = env.GATEHOUSE_DATABASE_URL || undefined
  const dbFile = join(dataDir, 'gatehouse.db')
  if (!url && !existsSync(dbFile))
    throw new GatewayError(
      'bad_request',
      `no Gatehouse database at ${dbFile}; pass the gateway's --data DIR, or set GATEHOUSE_DATABASE_URL for PostgreSQL`,
    )
  if (!env.GATEHOUSE_MASTER_KEY && !existsSync(join(dataDir, 'master.key')))
    throw new GatewayError(
      'bad_request',
      `no master key: neither GATEHOUSE_MASTER_KEY nor ${join(dataDir, 'master.key')} is there`,
    )
  const out = (line: string) => process.stdout.write(line + '\n')
  if (args.flags.has('new-key')) {
    const { primary, previous } = rotateMasterKeyFile(dataDir, env)
    out(
      `new master key ${primary.id} written to ${join(dataDir, 'master.key')}; ` +
        `the previous key ${previous.id} is kept in ${join(dataDir, PREVIOUS_KEYS_FILE)}`,
    )
  }
  const keys = loadMasterKeys(dataDir, env)
  const store = await openStore(url, dbFile)
  try {
    const previous = keys.slice(1).map((k) => k.id)
    out(`master key: primary ${keys[0]!.id}${previous.length ? `, previous ${previous.join(', ')}` : ''}`)
    const report = await rotateMaster({ connections: store.connections, keys: localKeyProvider(keys) })
    printReport(report, out)
    const stale = await staleManifestSecrets(store.resources, keys[0]!.id)
    printNotes(stale, out)
    for (const f of report.failures) process.stderr.write(`gatehouse: cannot re-wrap ${f}\n`)
    return report.failures.length ? 1 : 0
  } finally {
    await store.close()
  }
}

async function openStore(url: string | undefined, dbFile: string): Promise<Store> {
  if (url) return openPgStore({ url, poolSize: 2 })
  // A running gateway may share the file (WAL): wait for its writes instead of failing.
  return openSqliteStore({ path: dbFile, offThreadWrites: false, busyTimeoutMs: 30_000 })
}

function printReport(r: RotationReport, out: (line: string) => void): void {
  const c = r.connections
  out(
    `connections: ${c.rewrapped} re-wrapped, ${c.current} already under the primary key, ` +
      `${c.gone} deleted meanwhile, ${c.failed} failed`,
  )
  const k = r.clients
  out(
    `oauth client secrets: ${k.rewrapped} re-wrapped, ${k.current} already under the primary key, ` +
      `${k.withoutSecret} without a secret, ${k.failed} failed`,
  )
}

function printNotes(
  stale: { resource: string; path: string; keyId: string }[],
  out: (line: string) => void,
): void {
  if (stale.length) {
    const list = stale.map((s) => `${s.resource} ${s.path} (key ${s.keyId})`).join('; ')
    out(
      `manifest secrets sealed with an older key: ${stale.length}: ${list}. ` +
        're-seal each with `gatehouse seal` and re-apply the manifest',
    )
  } else out('manifest secrets sealed with an older key: 0')
  out(
    'note: values sealed with `gatehouse seal` (manifests) and the webhook and A2A push secrets of runs in ' +
      'flight are not re-sealed by rotate-master; keep the old key among the previous keys until those ' +
      'are re-sealed or finished (docs/operations.md, "Master keys and rotation")',
  )
}
