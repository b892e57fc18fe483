import { z } from 'zod'
import { GatewayError } from '../../errors.js'
import type { MemoryRecord } from '../../store/types.js'
import type { Route, RouteRequest } from '../router.js'
import type { RouteDeps } from './deps.js'
import { targetContext } from './admin.js'

/*
 * Long-term memory over REST (docs/memory.md). Shapes only are checked here; the memory store
 * validates labels, keys, values, TTLs, filters and limits and names the problem in its errors.
 */

const Labels = z.array(z.string())
/** Another owner's items (admins, auditors, operators); members may only name themselves. */
const Owner = z.string().max(600).optional()

const PutBody = z
  .object({
    namespace: Labels,
    key: z.string(),
    value: z.record(z.string(), z.unknown()),
    /** Seconds; null or absent: never expires. */
    ttl: z.number().nullable().optional(),
    owner: Owner,
  })
  .strict()

const ItemRef = z.object({ namespace: Labels, key: z.string(), owner: Owner }).strict()

const SearchBody = z
  .object({
    namespace_prefix: Labels.optional(),
    filter: z.record(z.string(), z.unknown()).optional(),
    limit: z.number().optional(),
    offset: z.number().optional(),
    owner: Owner,
  })
  .strict()

const NamespacesBody = z
  .object({
    prefix: Labels.optional(),
    max_depth: z.number().optional(),
    limit: z.number().optional(),
    offset: z.number().optional(),
    owner: Owner,
  })
  .strict()

/** The REST view of an item: snake_case, `expires_at` null when it never expires. */
export function itemView(i: MemoryRecord) {
  return {
    ...(i.owner !== undefined ? { owner: i.owner } : {}),
    namespace: i.namespace,
    key: i.key,
    value: i.value,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
    expires_at: i.expiresAt ?? null,
  }
}

/** `?namespace=a&namespace=b&key=k`: one `namespace` parameter per label, so any label round-trips. */
function itemFromQuery(r: RouteRequest): { namespace: string[]; key: string; owner?: string } {
  const q = r.url.searchParams
  const namespace = q.getAll('namespace')
  const key = q.get('key')
  const owner = q.get('owner')
  if (namespace.length === 0 || key === null)
    throw new GatewayError(
      'bad_request',
      'namespace and key query parameters are required: repeat namespace once per label, e.g. ?namespace=users&namespace=u-1&key=prefs',
    )
  return { namespace, key, ...(owner !== null ? { owner } : {}) }
}

const notFound = (ref: { namespace: string[]; key: string }) =>
  new GatewayError(
    'not_found',
    `no item ${JSON.stringify(ref.key)} in namespace ${JSON.stringify(ref.namespace)}`,
  )

/** Roles that may write; an auditor may only read. */
const WRITERS: Route['roles'] = ['admin', 'member', 'approver']

/**
 * The tenant's long-term memory store, partitioned by owner: everyone reads and writes their own
 * items; admins and auditors read every owner's (and name one with `owner`). Writing (put, delete)
 * needs admin, member or approver, so an auditor only reads. Operators may name another tenant
 * with `?tenant=`.
 */
export function storeRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'PUT',
      path: '/v1/store/items',
      auth: 'required',
      roles: WRITERS,
      summary: 'create or replace a memory item',
      handler: async (r) => {
        const ctx = targetContext(r)
        const body = await r.json(PutBody)
        await deps.store.memory.put(ctx, {
          namespace: body.namespace,
          key: body.key,
          value: body.value,
          ...(body.ttl != null ? { ttlSeconds: body.ttl } : {}),
          ...(body.owner !== undefined ? { owner: body.owner } : {}),
        })
        return { status: 204 }
      },
    },
    {
      method: 'GET',
      path: '/v1/store/items',
      auth: 'required',
      summary: 'get one memory item (?namespace=… once per label, &key=…)',
      handler: async (r) => {
        const ctx = targetContext(r)
        const ref = itemFromQuery(r)
        const item = await deps.store.memory.get(
          ctx,
          ref.namespace,
          ref.key,
          ref.owner !== undefined ? { owner: ref.owner } : {},
        )
        if (!item) throw notFound(ref)
        return { body: itemView(item) }
      },
    },
    {
      method: 'DELETE',
      path: '/v1/store/items',
      auth: 'required',
      roles: WRITERS,
      summary: 'delete one memory item ({namespace, key} body, or the query of GET)',
      handler: async (r) => {
        const ctx = targetContext(r)
        const ref = (await r.body()).length > 0 ? await r.json(ItemRef) : itemFromQuery(r)
        const opts = ref.owner !== undefined ? { owner: ref.owner } : {}
        if (!(await deps.store.memory.delete(ctx, ref.namespace, ref.key, opts))) throw notFound(ref)
        return { status: 204 }
      },
    },
    {
      method: 'POST',
      path: '/v1/store/items/search',
      auth: 'required',
      summary: 'search memory items under a namespace prefix, with filters',
      handler: async (r) => {
        const ctx = targetContext(r)
        const body = await r.json(SearchBody)
        const items = await deps.store.memory.search(ctx, {
          namespacePrefix: body.namespace_prefix ?? [],
          ...(body.filter !== undefined ? { filter: body.filter } : {}),
          ...(body.limit !== undefined ? { limit: body.limit } : {}),
          ...(body.offset !== undefined ? { offset: body.offset } : {}),
          ...(body.owner !== undefined ? { owner: body.owner } : {}),
        })
        return { body: { items: items.map(itemView) } }
      },
    },
    {
      method: 'POST',
      path: '/v1/store/namespaces',
      auth: 'required',
      summary: 'list the namespaces holding memory items',
      handler: async (r) => {
        const ctx = targetContext(r)
        const body = await r.json(NamespacesBody)
        const namespaces = await deps.store.memory.listNamespaces(ctx, {
          ...(body.prefix !== undefined ? { prefix: body.prefix } : {}),
          ...(body.max_depth !== undefined ? { maxDepth: body.max_depth } : {}),
          ...(body.limit !== undefined ? { limit: body.limit } : {}),
          ...(body.offset !== undefined ? { offset: body.offset } : {}),
          ...(body.owner !== undefined ? { owner: body.owner } : {}),
        })
        return { body: { namespaces } }
      },
    },
  ]
}
