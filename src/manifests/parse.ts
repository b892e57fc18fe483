import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, extname, isAbsolute, join, resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { GatewayError } from '../errors.js'

/** One raw document and where it came from (`file#n`), used to name problems. */
export interface ManifestSource {
  origin: string
  doc: unknown
  /** Directory relative paths in the document resolve against (manifest files only). */
  baseDir?: string
}

export interface ManifestIssue {
  document: string
  path: string
  message: string
}

/**
 * Parses YAML (multi-document) or JSON text. A top-level array is a list of documents; an object
 * `{ items: [{ source, document }] }` (what `gatehouse apply` sends) keeps each document's file name.
 */
export function parseManifestText(text: string, origin: string, baseDir?: string): ManifestSource[] {
  const out: ManifestSource[] = []
  const issues: ManifestIssue[] = []
  const docs = parseAllDocuments(text, { prettyErrors: true })
  const list = Array.isArray(docs) ? docs : [docs]
  let n = 0
  for (const d of list) {
    if (d.errors.length) {
      for (const e of d.errors)
        issues.push({ document: origin, path: '', message: `syntax: ${e.message.split('\n')[0]}` })
      continue
    }
    const value: unknown = d.toJS()
    if (value === null || value === undefined) continue
    if (isSourcedBatch(value)) {
      for (const it of value.items) out.push({ origin: String(it.source).slice(0, 300), doc: it.document })
      continue
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      n += 1
      out.push({ origin: `${origin}#${n}`, doc: item, ...(baseDir ? { baseDir } : {}) })
    }
  }
  if (issues.length) throw manifestError(issues)
  return out
}

function isSourcedBatch(v: unknown): v is { items: { source: unknown; document: unknown }[] } {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false
  const items = (v as { items?: unknown }).items
  return (
    Array.isArray(items) &&
    Object.keys(v).length === 1 &&
    items.every((i) => i && typeof i === 'object' && 'source' in i && 'document' in i)
  )
}

const MANIFEST_EXT = new Set(['.yaml', '.yml', '.json'])

/** Reads a file or every manifest file in a directory (sorted, not recursive into dot-dirs). */
export function readManifestPath(path: string): ManifestSource[] {
  const abs = resolve(path)
  let st
  try {
    st = statSync(abs)
  } catch {
    throw new GatewayError('bad_request', `manifest path ${path} does not exist`)
  }
  if (st.isDirectory()) {
    return readdirSync(abs)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .flatMap((f) => {
        const p = join(abs, f)
        if (statSync(p).isDirectory()) return readManifestPath(p)
        return MANIFEST_EXT.has(extname(f)) ? readManifestPath(p) : []
      })
  }
  return parseManifestText(readFileSync(abs, 'utf8'), path, dirname(abs))
}

export function resolveFrom(baseDir: string | undefined, p: string): string {
  return baseDir && !isAbsolute(p) ? resolve(baseDir, p) : p
}

export function manifestError(issues: ManifestIssue[]): GatewayError {
  const lines = issues.map(formatIssue)
  return new GatewayError(
    'invalid_manifest',
    `invalid manifests (${issues.length} problem${issues.length === 1 ? '' : 's'}): ${lines.join('; ')}`,
    {
      details: issues,
    },
  )
}

export function formatIssue(i: ManifestIssue): string {
  return `${i.document}${i.path ? ' ' + i.path : ''}: ${i.message}`
}
