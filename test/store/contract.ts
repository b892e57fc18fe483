import { describe, expect, it, beforeEach, afterEach } from 'vitest'
import { createContext, systemContext, type CallContext, type Role } from '../../src/context.js'
import type { Store } from '../../src/store/types.js'

/**
 * The store contract: every implementation (SQLite now, PostgreSQL later) runs this suite.
 * Tenant isolation is part of the contract, not an afterthought.
 */
export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`store contract: ${name}`, () => {
    let store: Store
    const op = systemContext('default')
    const admin = (tenant: string, role: Role = 'admin'): CallContext =>
      createContext({ tenant, principal: { kind: 'service', id: `k-${tenant}` }, roles: [role] })

    beforeEach(async () => {
      store = await open()
      await store.tenants.ensure(op, 'default')
      await store.tenants.ensure(op, 'acme')
      await store.tenants.ensure(op, 'globex')
    })
    afterEach(async () => {
      await store.close()
    })

    it('tenants: ensure is idempotent, non-operators see only their own, cannot create', async () => {
      await store.tenants.ensure(op, 'acme', 'Acme Inc')
      expect((await store.tenants.get(op, 'acme'))?.displayName).toBe('Acme Inc')
      expect((await store.tenants.list(op)).map((t) => t.name)).toEqual(['acme', 'default', 'globex'])
      expect((await store.tenants.list(admin('acme'))).map((t) => t.name)).toEqual(['acme'])
      expect(await store.tenants.get(admin('acme'), 'globex')).toBeUndefined()
      await expect(store.tenants.ensure(admin('acme'), 'new')).rejects.toThrow(/operator/)
    })

    it('keys: create, list per tenant, lookup by hash, revoke only within the tenant', async () => {
      const a = admin('acme')
      const rec = await store.keys.create(a, {
        id: 'k1',
        name: 'ci',
        role: 'member',
        hash: 'h1',
        scopes: ['x'],
      })
      expect(rec).toMatchObject({ id: 'k1', tenant: 'acme', role: 'member', scopes: ['x'], operator: false })
      expect((await store.keys.list(a)).map((k) => k.id)).toEqual(['k1'])
      expect(await store.keys.list(admin('globex'))).toEqual([])
      expect((await store.keys.lookupByHash('h1'))?.tenant).toBe('acme')
      expect(await store.keys.revoke(admin('globex'), 'k1')).toBe(false)
      expect(await store.keys.lookupByHash('h1')).toBeDefined()
      expect(await store.keys.revoke(a, 'k1')).toBe(true)
      expect(await store.keys.revoke(a, 'k1')).toBe(false)
      expect(await store.keys.lookupByHash('h1')).toBeUndefined()
    })

    it('keys: expired keys do not authenticate; operator keys need an operator', async () => {
      const a = admin('acme')
      await store.keys.create(a, {
        id: 'k2',
        name: 'old',
        role: 'admin',
        hash: 'h2',
        expiresAt: new Date(Date.now() - 1000).toISOString(),
      })
      expect(await store.keys.lookupByHash('h2')).toBeUndefined()
      await expect(
        store.keys.create(a, { id: 'k3', name: 'x', role: 'admin', hash: 'h3', operator: true }),
      ).rejects.toThrow(/operator/)
      await store.keys.upsertBootstrap(op, 'boot1')
      await store.keys.upsertBootstrap(op, 'boot2')
      expect(await store.keys.lookupByHash('boot1')).toBeUndefined()
      expect((await store.keys.lookupByHash('boot2'))?.operator).toBe(true)
      expect(await store.keys.hasBootstrap(op)).toBe(true)
    })

    it('keys: returned records are copies', async () => {
      const a = admin('acme')
      const rec = await store.keys.create(a, {
        id: 'k4',
        name: 'n',
        role: 'member',
        hash: 'h4',
        scopes: ['s'],
      })
      rec.scopes.push('mutated')
      expect((await store.keys.list(a))[0]!.scopes).toEqual(['s'])
    })

    it('resources: apply is all-or-nothing, generations bump on change only, tenants isolated', async () => {
      const a = admin('acme')
      const r1 = await store.resources.apply(a, [
        { kind: 'Connector', tenant: 'acme', name: 'gh', spec: { url: 'x' } },
        { kind: 'Server', tenant: 'acme', name: 's', spec: { connectors: ['gh'] } },
      ])
      expect(r1.map((r) => r.action)).toEqual(['created', 'created'])
      const r2 = await store.resources.apply(a, [
        { kind: 'Connector', tenant: 'acme', name: 'gh', spec: { url: 'x' } },
      ])
      expect(r2[0]).toMatchObject({ action: 'unchanged', resource: { generation: 1 } })
      const r3 = await store.resources.apply(a, [
        { kind: 'Connector', tenant: 'acme', name: 'gh', spec: { url: 'y' } },
      ])
      expect(r3[0]).toMatchObject({ action: 'updated', resource: { generation: 2, spec: { url: 'y' } } })
      await expect(
        store.resources.apply(a, [
          { kind: 'Connector', tenant: 'acme', name: 'other', spec: {} },
          { kind: 'Connector', tenant: 'globex', name: 'evil', spec: {} },
        ]),
      ).rejects.toThrow()
      expect(await store.resources.get(a, 'Connector', 'other')).toBeUndefined()
      expect(await store.resources.list(admin('globex'), 'Connector')).toEqual([])
      expect((await store.resources.list(a, 'Connector', { allTenants: true })).map((r) => r.tenant)).toEqual(
        ['acme'],
      )
      expect((await store.resources.list(op, undefined, { allTenants: true })).length).toBe(2)
      expect(await store.resources.delete(admin('globex'), 'Connector', 'gh')).toBe(false)
      expect(await store.resources.delete(a, 'Connector', 'gh')).toBe(true)
    })

    it('resources: a failing document rolls back the whole batch', async () => {
      const a = admin('acme')
      const bad = {
        toJSON() {
          throw new Error('boom')
        },
      }
      await expect(
        store.resources.apply(a, [
          { kind: 'Connector', tenant: 'acme', name: 'one', spec: { ok: 1 } },
          { kind: 'Connector', tenant: 'acme', name: 'two', spec: bad },
        ]),
      ).rejects.toThrow('boom')
      expect(await store.resources.list(a)).toEqual([])
    })

    it('audit: append in batches, list newest first, paginate, tenant-scoped', async () => {
      const events = Array.from({ length: 5 }, (_, i) => ({
        id: `e${i}`,
        tenant: i % 2 ? 'globex' : 'acme',
        at: new Date(Date.now() + i).toISOString(),
        principal: 'p',
        principalKind: 'service',
        action: 'tool.call',
        target: `c/t${i}`,
        outcome: 'ok' as const,
        argsHash: 'abc',
        latencyMs: 1.5,
      }))
      await store.audit.append(events)
      await store.audit.append([events[0]!]) // duplicate id ignored
      const page1 = await store.audit.list(admin('acme', 'auditor'), { limit: 2 })
      expect(page1.items.map((e) => e.id)).toEqual(['e4', 'e2'])
      expect(page1.next).toBeDefined()
      const page2 = await store.audit.list(admin('acme', 'auditor'), { limit: 2, before: page1.next! })
      expect(page2.items.map((e) => e.id)).toEqual(['e0'])
      expect(page2.next).toBeUndefined()
      expect((await store.audit.list(admin('globex'))).items.map((e) => e.id)).toEqual(['e3', 'e1'])
      await expect(store.audit.list(admin('acme'), { before: '!!' })).rejects.toThrow(/cursor/)
    })

    it('spans: append, read a trace, tenant-scoped', async () => {
      const base = {
        name: 'tools/call',
        kind: '1',
        startMs: 1,
        durationMs: 2,
        status: 'ok' as const,
        attributes: { a: 1 },
      }
      await store.spans.append([
        { ...base, traceId: 't1', spanId: 's1', tenant: 'acme' },
        { ...base, traceId: 't1', spanId: 's2', parentSpanId: 's1', tenant: 'acme' },
        { ...base, traceId: 't2', spanId: 's3', tenant: 'globex' },
      ])
      expect((await store.spans.listTrace(admin('acme'), 't1')).map((s) => s.spanId)).toEqual(['s1', 's2'])
      expect(await store.spans.listTrace(admin('globex'), 't1')).toEqual([])
      expect((await store.spans.recent(admin('globex'))).map((s) => s.spanId)).toEqual(['s3'])
    })
  })
}
