import { GatewayError } from '../errors.js'
import { readManifestPath, resolveFrom } from '../manifests/parse.js'
import { all, one, parseArgs } from './args.js'
import { call, target } from './client.js'

/**
 * `gatehouse apply -f FILE_OR_DIR`: reads the manifests locally (so relative paths resolve
 * against the manifest files) and sends them as one all-or-nothing batch.
 */
export async function runApply(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    command: 'apply',
    values: ['file', 'url', 'key', 'tenant'],
    switches: ['dry-run'],
  })
  const files = all(args, 'file')
  if (!files.length) throw new GatewayError('bad_request', 'apply needs -f FILE_OR_DIR')
  const sources = files.flatMap((f) => readManifestPath(f))
  if (!sources.length) throw new GatewayError('bad_request', `no manifests found in ${files.join(', ')}`)
  // Each document travels with its file name so that problems are reported as `file.yaml#2 …`.
  const items = sources.map((s) => ({ source: s.origin, document: withLocalPaths(s.doc, s.baseDir) }))
  const q = new URLSearchParams()
  if (one(args, 'dry-run')) q.set('dry_run', 'true')
  if (one(args, 'tenant')) q.set('tenant', one(args, 'tenant')!)
  const res = (await call(
    target(args),
    'POST',
    `/v1/admin/manifests${q.size ? '?' + q : ''}`,
    JSON.stringify({ items }),
  )) as {
    applied: { kind: string; tenant: string; name: string; action: string }[]
    dry_run: boolean
  }
  for (const a of res.applied) {
    process.stdout.write(
      `${a.kind.toLowerCase()}/${a.name} (tenant ${a.tenant}) ${res.dry_run ? 'valid' : a.action}\n`,
    )
  }
  return 0
}

/** Resolves a stdio connector's cwd and a code agent's module on this machine before the document leaves it. */
function withLocalPaths(doc: unknown, baseDir: string | undefined): unknown {
  const d = doc as {
    kind?: string
    spec?: { transport?: string; cwd?: string; type?: string; module?: unknown }
  }
  if (!baseDir || !d?.spec) return doc
  if (d.kind === 'Connector' && d.spec.transport === 'stdio')
    return { ...d, spec: { ...d.spec, cwd: resolveFrom(baseDir, d.spec.cwd ?? '.') } }
  if (d.kind === 'Agent' && d.spec.type === 'code' && typeof d.spec.module === 'string')
    return { ...d, spec: { ...d.spec, module: resolveFrom(baseDir, d.spec.module) } }
  return doc
}
