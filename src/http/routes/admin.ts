import { z } from 'zod'
import { generateApiKey, generateKeyId, hashApiKey } from '../../auth/api-keys.js'
import { SCOPE_RE } from '../../config.js'
import { inTenant, ROLES, type CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import { applyManifests } from '../../manifests/apply.js'
import { parseManifestText } from '../../manifests/parse.js'
import { NAME_RE } from '../../manifests/schema.js'
import type { ResourceKind } from '../../store/types.js'
import type { Route, RouteRequest } from '../router.js'
import type { RouteDeps } from './deps.js'

/** Operators may act in another tenant with `?tenant=`; anyone else is confined to their own. */
export function targetContext(r: RouteRequest, requested?: string | null): CallContext {
  const tenant = requested ?? r.url.searchParams.get('tenant') ?? r.ctx.tenant
  if (tenant === r.ctx.tenant) return r.ctx
  if (!r.ctx.operator) throw new GatewayError('not_found', 'not found')
  return inTenant(r.ctx, tenant)
}

const KeyBody = z
  .object({
    tenant: z.string().regex(NAME_RE, 'invalid tenant name').optional(),
    role: z.enum(ROLES as [string, ...string[]]),
    name: z.string().max(200).optional(),
    expires_in: z
      .number()
      .int()
      .positive()
      .max(10 * 365 * 86400)
      .optional(),
    /** Limits the key to routes needing these scopes (docs/auth.md); absent or []: its role alone decides. */
    scopes: z
      .array(z.string().regex(SCOPE_RE, 'a scope is 1–200 printable ASCII characters without spaces'))
      .max(50)
      .optional(),
  })
  .strict()

const TenantBody = z
  .object({
    name: z.string().regex(NAME_RE, 'invalid tenant name'),
    display_name: z.string().max(200).optional(),
  })
  .strict()

function keyView(k: {
  id: string
  tenant: string
  name: string
  role: string
  createdAt: string
  expiresAt?: string
  revokedAt?: string
  scopes: string[]
}) {
  return {
    id: k.id,
    tenant: k.tenant,
    name: k.name,
    role: k.role,
    scopes: k.scopes,
    created_at: k.createdAt,
    expires_at: k.expiresAt ?? null,
    revoked_at: k.revokedAt ?? null,
  }
}

function auditAdmin(
  deps: RouteDeps,
  ctx: CallContext,
  action: string,
  target: string,
  outcome: 'ok' | 'error' = 'ok',
): Promise<void> {
  return deps.audit.action(ctx, action, target, outcome)
}

function resourceRoutes(deps: RouteDeps, kind: ResourceKind, plural: string): Route[] {
  return [
    {
      method: 'GET',
      path: `/v1/admin/${plural}`,
      auth: 'required',
      roles: ['admin'],
      summary: `list ${plural}`,
      handler: async (r) => {
        const ctx = targetContext(r)
        const items = await deps.store.resources.list(ctx, kind)
        return { body: { items: items.map((i) => deps.describe(i)) } }
      },
    },
    {
      method: 'GET',
      path: `/v1/admin/${plural}/{name}`,
      auth: 'required',
      roles: ['admin'],
      summary: `get one ${kind}`,
      handler: async (r) => {
        const ctx = targetContext(r)
        const item = await deps.store.resources.get(ctx, kind, r.params.name!)
        if (!item) throw new GatewayError('not_found', `${kind} ${r.params.name} not found`)
        return { body: deps.describe(item) }
      },
    },
    {
      method: 'DELETE',
      path: `/v1/admin/${plural}/{name}`,
      auth: 'required',
      roles: ['admin'],
      summary: `delete one ${kind}`,
      handler: async (r) => {
        const ctx = targetContext(r)
        if (kind === 'Connector') await deps.assertNotReferenced(ctx, r.params.name!)
        const gone = await deps.store.resources.delete(ctx, kind, r.params.name!)
        if (!gone) throw new GatewayError('not_found', `${kind} ${r.params.name} not found`)
        await auditAdmin(deps, ctx, `${kind.toLowerCase()}.delete`, r.params.name!)
        await deps.reload()
        return { status: 204 }
      },
    },
  ]
}

/** Admin API: manifests, tenants, keys, connectors, servers. */
export function adminRoutes(deps: RouteDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/admin/manifests',
      auth: 'required',
      roles: ['admin'],
      summary: 'apply manifests (YAML or JSON), all or nothing',
      handler: async (r) => {
        const ctx = targetContext(r)
        const text = (await r.body()).toString('utf8')
        if (!text.trim())
          throw new GatewayError('bad_request', 'request body is empty; expected manifests in YAML or JSON')
        const sources = parseManifestText(text, 'request')
        if (!sources.length)
          throw new GatewayError('bad_request', 'no manifest documents in the request body')
        const dryRun = r.url.searchParams.get('dry_run') === 'true'
        const applied = await applyManifests(ctx, deps.store, sources, { dryRun })
        if (!dryRun) {
          for (const a of applied)
            if (a.action !== 'unchanged')
              await auditAdmin(deps, inTenant(ctx, a.tenant), `${a.kind.toLowerCase()}.apply`, a.name)
          await deps.reload()
        }
        return { status: 200, body: { dry_run: dryRun, applied } }
      },
    },
    {
      method: 'GET',
      path: '/v1/admin/tenants',
      auth: 'required',
      roles: ['admin'],
      summary: 'list tenants (operators: all; admins: their own)',
      handler: async (r) => {
        const items = await deps.store.tenants.list(r.ctx)
        return {
          body: {
            items: items.map((t) => ({
              name: t.name,
              display_name: t.displayName ?? null,
              created_at: t.createdAt,
            })),
          },
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/tenants',
      auth: 'required',
      roles: ['admin'],
      summary: 'create a tenant (operators only)',
      handler: async (r) => {
        const body = await r.json(TenantBody)
        const t = await deps.store.tenants.ensure(r.ctx, body.name, body.display_name)
        await auditAdmin(deps, inTenant(r.ctx, t.name), 'tenant.create', t.name)
        return {
          status: 201,
          body: { name: t.name, display_name: t.displayName ?? null, created_at: t.createdAt },
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/admin/keys',
      auth: 'required',
      roles: ['admin'],
      summary: 'create an API key (shown once)',
      handler: async (r) => {
        const body = await r.json(KeyBody)
        const ctx = targetContext(r, body.tenant ?? null)
        const scopes = body.scopes ?? []
        // A caller limited by scopes cannot mint a key reaching further: no scopes means none.
        if (r.ctx.scopesEnforced) {
          const beyond = scopes.filter((s) => !r.ctx.scopes.includes(s))
          if (!scopes.length || beyond.length)
            throw new GatewayError(
              'forbidden',
              `this caller is limited to scopes ${r.ctx.scopes.join(' ') || '(none)'}: the new key ` +
                (scopes.length ? `may not have ${beyond.join(' ')}` : 'needs scopes within those'),
            )
        }
        if (ctx.tenant !== r.ctx.tenant) await deps.store.tenants.ensure(r.ctx, ctx.tenant)
        const key = generateApiKey()
        const rec = await deps.store.keys.create(ctx, {
          id: generateKeyId(),
          name: body.name ?? `${body.role} key`,
          role: body.role as (typeof ROLES)[number],
          hash: hashApiKey(key),
          scopes,
          ...(body.expires_in
            ? { expiresAt: new Date(Date.now() + body.expires_in * 1000).toISOString() }
            : {}),
        })
        await auditAdmin(deps, ctx, 'key.create', rec.id)
        return { status: 201, body: { ...keyView(rec), key } }
      },
    },
    {
      method: 'GET',
      path: '/v1/admin/keys',
      auth: 'required',
      roles: ['admin'],
      summary: 'list API keys (metadata only)',
      handler: async (r) => ({
        body: { items: (await deps.store.keys.list(targetContext(r))).map(keyView) },
      }),
    },
    {
      method: 'DELETE',
      path: '/v1/admin/keys/{id}',
      auth: 'required',
      roles: ['admin'],
      summary: 'revoke an API key',
      handler: async (r) => {
        const ctx = targetContext(r)
        if (r.params.id === 'bootstrap')
          throw new GatewayError(
            'bad_request',
            'the bootstrap key is set by GATEHOUSE_ADMIN_KEY or DATA/admin.key',
          )
        if (!(await deps.store.keys.revoke(ctx, r.params.id!)))
          throw new GatewayError('not_found', `key ${r.params.id} not found`)
        deps.authenticator.invalidate()
        await auditAdmin(deps, ctx, 'key.revoke', r.params.id!)
        return { status: 204 }
      },
    },
    ...resourceRoutes(deps, 'Connector', 'connectors'),
    ...resourceRoutes(deps, 'Server', 'servers'),
  ]
}
