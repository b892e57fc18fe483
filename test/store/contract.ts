import { describe, expect, it, beforeEach, afterEach } from 'vitest'
import { createContext, systemContext, type CallContext, type Role } from '../../src/context.js'
import { createLogger } from '../../src/log.js'
import type { Store } from '../../src/store/types.js'
import { CallLog } from '../../src/telemetry/call-log.js'

/**
 * The store contract: every implementation (SQLite now, PostgreSQL later) runs this suite.
 * Tenant isolation is part of the contract, not an afterthought.
 */
/** The span attributes a tool call of `crm/find` by key `k-acme` in tenant acme reads back with. */
const FIND_ATTRIBUTES = {
  'gatehouse.tenant': 'acme',
  'gatehouse.principal': 'k-acme',
  'gatehouse.connector': 'crm',
  'mcp.tool.name': 'find',
  'mcp.method.name': 'tools/call',
}

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

    it('calls: a call-log batch becomes audit rows and spans, tenant-scoped', async () => {
      const calls = new CallLog({ store: store.calls, logger: createLogger('silent'), flushMs: 60_000 })
      const tool = { exposed: 'crm__find', name: 'find', connection: { name: 'crm' } }
      const t = (n: number) => n.toString(16).padStart(32, '0')
      const s = (n: number) => n.toString(16).padStart(16, '0')
      const hash = 'ab'.repeat(32)
      calls.record(
        admin('acme'),
        tool,
        t(1),
        s(1),
        undefined,
        true,
        1000,
        2.5,
        'ok',
        undefined,
        undefined,
        hash,
      )
      calls.record(
        admin('acme'),
        tool,
        t(1),
        s(2),
        s(1),
        true,
        1001,
        1,
        'error',
        'tool_error',
        undefined,
        hash,
      )
      calls.record(
        admin('globex'),
        tool,
        t(2),
        s(3),
        s(9),
        false,
        1002,
        1,
        'denied',
        'forbidden',
        'GatewayError',
        hash,
      )
      await calls.close()
      const acme = await store.audit.list(admin('acme', 'auditor'))
      expect(acme.items).toHaveLength(2)
      expect(acme.items[1]).toMatchObject({
        tenant: 'acme',
        principal: 'k-acme',
        principalKind: 'service',
        action: 'tool.call',
        target: 'crm/find',
        outcome: 'ok',
        argsHash: hash,
        latencyMs: 2.5,
        traceId: t(1),
      })
      expect(acme.items[0]).toMatchObject({ outcome: 'error', errorCode: 'tool_error' })
      expect(acme.items[0]!.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f-]{27}$/)
      expect(acme.items[0]!.id).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      )
      const spans = await store.spans.listTrace(admin('acme'), t(1))
      expect(spans).toEqual([
        {
          traceId: t(1),
          spanId: s(1),
          tenant: 'acme',
          name: 'tools/call crm__find',
          kind: '2',
          startMs: 1000,
          durationMs: 2.5,
          status: 'ok',
          attributes: FIND_ATTRIBUTES,
        },
        expect.objectContaining({ spanId: s(2), parentSpanId: s(1), status: 'error', startMs: 1001 }),
      ])
      // Not sampled: the audit row is kept, the span is not.
      expect((await store.audit.list(admin('globex'))).items).toMatchObject([
        { outcome: 'denied', errorCode: 'forbidden', traceId: t(2) },
      ])
      expect(await store.spans.listTrace(admin('globex'), t(2))).toEqual([])
      expect(await store.spans.listTrace(admin('globex'), t(1))).toEqual([])
    })

    it("calls: a call's span is read with the other spans of its trace, and among the recent ones", async () => {
      const t = (n: number) => n.toString(16).padStart(32, '0')
      const s = (n: number) => n.toString(16).padStart(16, '0')
      // A run's span (spans table) around two tool calls (call log), and a later span of its own.
      await store.spans.append([
        {
          traceId: t(7),
          spanId: s(70),
          tenant: 'acme',
          name: 'run agent',
          kind: '1',
          startMs: 5000,
          durationMs: 50,
          status: 'ok',
          attributes: { 'gatehouse.run': 'r1' },
        },
        {
          traceId: t(8),
          spanId: s(80),
          tenant: 'acme',
          name: 'later',
          kind: '1',
          startMs: 9000,
          durationMs: 1,
          status: 'ok',
          attributes: {},
        },
      ])
      const calls = new CallLog({ store: store.calls, logger: createLogger('silent'), flushMs: 60_000 })
      const tool = { exposed: 'crm__find', name: 'find', connection: { name: 'crm' } }
      const hash = 'cd'.repeat(32)
      calls.record(
        admin('acme'),
        tool,
        t(7),
        s(72),
        s(70),
        true,
        5020,
        3,
        'error',
        'upstream_unavailable',
        'GatewayError',
        hash,
      )
      calls.record(
        admin('acme'),
        tool,
        t(7),
        s(71),
        s(70),
        true,
        5010,
        4.25,
        'ok',
        undefined,
        undefined,
        hash,
      )
      await calls.close()
      const trace = await store.spans.listTrace(admin('acme'), t(7))
      expect(trace.map((x) => [x.spanId, x.parentSpanId, x.startMs])).toEqual([
        [s(70), undefined, 5000],
        [s(71), s(70), 5010],
        [s(72), s(70), 5020],
      ])
      expect(trace[0]!.attributes).toEqual({ 'gatehouse.run': 'r1' })
      expect(trace[1]).toMatchObject({
        name: 'tools/call crm__find',
        kind: '2',
        durationMs: 4.25,
        status: 'ok',
      })
      expect(trace[2]).toMatchObject({
        status: 'error',
        durationMs: 3,
        attributes: { ...FIND_ATTRIBUTES, 'exception.type': 'GatewayError' },
      })
      const recent = await store.spans.recent(admin('acme'))
      expect(recent.map((x) => x.spanId)).toEqual([s(80), s(72), s(71), s(70)])
      expect((await store.spans.recent(admin('acme'), 2)).map((x) => x.spanId)).toEqual([s(80), s(72)])
      expect(await store.spans.recent(admin('globex'))).toEqual([])
    })
  })
}
