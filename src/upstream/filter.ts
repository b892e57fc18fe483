import type { ToolFilter } from '../manifests/schema.js'

const cache = new Map<string, RegExp>()

/** `*` matches any run of characters; everything else is literal. */
function globToRegExp(glob: string): RegExp {
  let re = cache.get(glob)
  if (!re) {
    re = new RegExp(
      '^' +
        glob
          .split('*')
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*') +
        '$',
    )
    cache.set(glob, re)
  }
  return re
}

/** True when any of `names` passes the filter: allow (if given) must match one, deny must match none. */
export function passes(filter: ToolFilter | undefined, ...names: string[]): boolean {
  if (!filter) return true
  const hit = (globs: string[] | undefined) =>
    globs?.some((g) => names.some((n) => globToRegExp(g).test(n))) ?? false
  if (filter.allow && !hit(filter.allow)) return false
  return !hit(filter.deny)
}

const VALID = /^[A-Za-z0-9_-]{1,64}$/

/**
 * `{prefix}__{tool}`, or the tool name unchanged with an empty prefix. Characters outside
 * [A-Za-z0-9_-] become `_`; names over 64 characters are shortened with a hash suffix so
 * every model vendor accepts them and routing stays exact.
 */
export function exposedName(prefix: string, tool: string, hash: (s: string) => string): string {
  const raw = prefix ? `${prefix}__${tool}` : tool
  if (VALID.test(raw)) return raw
  const clean = raw.replace(/[^A-Za-z0-9_-]/g, '_')
  return clean.length <= 64 ? clean || `_${hash(raw)}` : `${clean.slice(0, 55)}_${hash(raw).slice(0, 8)}`
}
