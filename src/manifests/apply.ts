import type { CallContext } from '../context.js'
import type { ApplyAction, Store } from '../store/types.js'
import { manifestError, type ManifestSource } from './parse.js'
import { validateManifests } from './validate.js'

export interface AppliedResource {
  kind: string
  tenant: string
  name: string
  action: ApplyAction
  generation: number
}

export interface ApplyOptions {
  dryRun?: boolean
}

/**
 * Validates the whole batch and writes it in one transaction: all or nothing.
 * Throws `invalid_manifest` listing every problem by document and path.
 */
export async function applyManifests(
  ctx: CallContext,
  store: Store,
  sources: ManifestSource[],
  { dryRun = false }: ApplyOptions = {},
): Promise<AppliedResource[]> {
  const existing = await store.resources.list(ctx, undefined, { allTenants: ctx.operator })
  const { resources, issues } = validateManifests(ctx, sources, existing)
  if (issues.length) throw manifestError(issues)
  if (dryRun) {
    return resources.map((r) => ({
      kind: r.kind,
      tenant: r.tenant,
      name: r.name,
      action: 'unchanged',
      generation: 0,
    }))
  }
  const applied = await store.resources.apply(ctx, resources)
  return applied.map(({ resource, action }) => ({
    kind: resource.kind,
    tenant: resource.tenant,
    name: resource.name,
    action,
    generation: resource.generation,
  }))
}
