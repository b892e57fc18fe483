import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, systemContext, type CallContext } from '../../src/context.js'
import type { NewApproval } from '../../src/store/policy.js'
import type { Store } from '../../src/store/types.js'

/** The approvals ledger and the limit counters: every store implementation runs this suite. */
export function policyContract(name: string, open: () => Promise<Store>): void {
  describe(`policy store contract: ${name}`, () => {
    let store: Store
    const acme = (id = 'k1'): CallContext =>
      createContext({ tenant: 'acme', principal: { kind: 'service', id }, roles: ['approver'] })
    const globex = createContext({
      tenant: 'globex',
      principal: { kind: 'service', id: 'g' },
      roles: ['admin'],
    })
    const future = () => new Date(Date.now() + 3_600_000).toISOString()
    const approval = (id: string, over: Partial<NewApproval> = {}): NewApproval => ({
      id,
      tool: 'github__deploy',
      connector: 'github',
      toolName: 'deploy',
      args: { env: 'prod', n: 1 },
      argsHash: 'h1',
      requester: { kind: 'service', id: 'req' },
      requesterRoles: ['member'],
      requesterKey: 'service:req',
      approvers: { roles: ['approver'], principals: [] },
      rule: 'p/0',
      ruleReason: 'why',
      expiresAt: future(),
      ...over,
    })

    beforeEach(async () => {
      store = await open()
      for (const t of ['acme', 'globex']) await store.tenants.ensure(systemContext(), t)
    })
    afterEach(async () => store.close())

    it('approvals: create, read back every field, dedupe by request key, scope by tenant', async () => {
      const { approval: a, created } = await store.approvals.create(
        acme(),
        approval('a1', { runId: 'r1', requestKey: 'r1:0' }),
      )
      expect(created).toBe(true)
      expect(a).toMatchObject({
        id: 'a1',
        tenant: 'acme',
        runId: 'r1',
        requestKey: 'r1:0',
        args: { env: 'prod', n: 1 },
        requester: { kind: 'service', id: 'req' },
        requesterRoles: ['member'],
        approvers: { roles: ['approver'], principals: [] },
        status: 'pending',
        ruleReason: 'why',
      })
      const again = await store.approvals.create(acme(), approval('a2', { runId: 'r1', requestKey: 'r1:0' }))
      expect(again).toMatchObject({ created: false, approval: { id: 'a1' } })
      expect((await store.approvals.byRequestKey(acme(), 'r1:0'))?.id).toBe('a1')
      expect(await store.approvals.get(globex, 'a1')).toBeUndefined()
      expect(await store.approvals.byRequestKey(globex, 'r1:0')).toBeUndefined()
      // Another tenant may use the same request key.
      expect((await store.approvals.create(globex, approval('g1', { requestKey: 'r1:0' }))).created).toBe(
        true,
      )
    })

    it('approvals: deciding is a compare-and-swap; expired ones cannot be decided', async () => {
      await store.approvals.create(acme(), approval('a1'))
      const now = new Date().toISOString()
      const d = {
        status: 'approved' as const,
        decision: 'edit' as const,
        decider: 'service:k1',
        channel: 'api',
      }
      const first = await store.approvals.decide(
        acme(),
        'a1',
        { ...d, editedArgs: { env: 'staging' }, reason: 'r' },
        now,
      )
      expect(first).toMatchObject({
        changed: true,
        approval: {
          status: 'approved',
          decision: 'edit',
          editedArgs: { env: 'staging' },
          reason: 'r',
          channel: 'api',
        },
      })
      const second = await store.approvals.decide(
        acme(),
        'a1',
        { ...d, status: 'rejected', decision: 'reject' },
        now,
      )
      expect(second).toMatchObject({ changed: false, approval: { status: 'approved' } })
      expect(await store.approvals.decide(globex, 'a1', d, now)).toBeUndefined()
      // Concurrent deciders: exactly one wins.
      await store.approvals.create(acme(), approval('a2'))
      const race = await Promise.all(
        ['approved', 'rejected', 'approved', 'rejected'].map((status, i) =>
          store.approvals.decide(
            acme(`k${i}`),
            'a2',
            {
              status: status as 'approved',
              decision: status === 'approved' ? 'approve' : 'reject',
              decider: `k${i}`,
              channel: 'api',
            },
            new Date().toISOString(),
          ),
        ),
      )
      expect(race.filter((r) => r?.changed)).toHaveLength(1)
      await store.approvals.create(
        acme(),
        approval('old', { expiresAt: new Date(Date.now() - 1000).toISOString() }),
      )
      expect((await store.approvals.decide(acme(), 'old', d, new Date().toISOString()))?.changed).toBe(false)
    })

    it('approvals: the sweeper expires due ones once and finds decided run approvals to resume', async () => {
      await store.approvals.create(
        acme(),
        approval('due', {
          runId: 'r9',
          requestKey: 'r9:1',
          expiresAt: new Date(Date.now() - 10).toISOString(),
        }),
      )
      await store.approvals.create(acme(), approval('later'))
      const expired = await store.approvals.expireDue(new Date().toISOString(), 10)
      expect(expired.map((a) => [a.id, a.status, a.decider])).toEqual([['due', 'expired', 'system:sweeper']])
      expect(await store.approvals.expireDue(new Date().toISOString(), 10)).toEqual([])
      expect((await store.approvals.unnotified(10)).map((a) => a.id)).toEqual(['due'])
      await store.approvals.markNotified('due')
      expect(await store.approvals.unnotified(10)).toEqual([])
    })

    it('approvals: direct calls reuse a pending or approved one once; lists filter and page', async () => {
      const q = {
        requesterKey: 'service:req',
        tool: 'github__deploy',
        argsHash: 'h1',
        nowIso: new Date().toISOString(),
      }
      expect(await store.approvals.reusable(acme(), q)).toBeUndefined()
      await store.approvals.create(acme(), approval('d1'))
      expect((await store.approvals.reusable(acme(), q))?.id).toBe('d1')
      expect(await store.approvals.reusable(acme(), { ...q, argsHash: 'other' })).toBeUndefined()
      expect(await store.approvals.markUsed(acme(), 'd1', q.nowIso)).toBe(false) // not approved yet
      await store.approvals.decide(
        acme(),
        'd1',
        { status: 'approved', decision: 'approve', decider: 'x', channel: 'api' },
        q.nowIso,
      )
      expect(await store.approvals.markUsed(acme(), 'd1', q.nowIso)).toBe(true)
      expect(await store.approvals.markUsed(acme(), 'd1', q.nowIso)).toBe(false)
      expect(await store.approvals.reusable(acme(), q)).toBeUndefined()
      await store.approvals.setNotice(acme(), 'd1', { channel: 'C1', ts: '1.2' })
      expect((await store.approvals.get(acme(), 'd1'))?.notice).toEqual({ channel: 'C1', ts: '1.2' })
      for (let i = 0; i < 5; i++)
        await store.approvals.create(
          acme(),
          approval(`p${i}`, { requesterKey: i % 2 ? 'service:a' : 'service:b' }),
        )
      expect((await store.approvals.list(acme(), { status: 'approved' })).items.map((a) => a.id)).toEqual([
        'd1',
      ])
      expect((await store.approvals.list(acme(), { requesterKey: 'service:a' })).items).toHaveLength(2)
      const page1 = await store.approvals.list(acme(), { limit: 4 })
      expect(page1.items).toHaveLength(4)
      const page2 = await store.approvals.list(acme(), { limit: 4, before: page1.next! })
      expect([...page1.items, ...page2.items].map((a) => a.id).sort()).toEqual([
        'd1',
        'p0',
        'p1',
        'p2',
        'p3',
        'p4',
      ])
      expect((await store.approvals.list(globex)).items).toEqual([])
    })

    it('limits: reservations never pass the limit, even concurrently; add and used', async () => {
      const results = await Promise.all(
        Array.from({ length: 30 }, () => store.limits.reserve('k', 'p', 1, 10)),
      )
      expect(results.filter((r) => r.ok)).toHaveLength(10)
      expect(await store.limits.used('k', 'p')).toBe(10)
      expect((await store.limits.reserve('k', 'p2', 3, 10)).used).toBe(3)
      expect(await store.limits.add('k', 'p', -1)).toBe(9)
      expect(await store.limits.add('new', 'p', 250)).toBe(250)
      expect(await store.limits.used('none', 'p')).toBe(0)
    })

    it('limits: token buckets', async () => {
      const t0 = 5_000_000
      expect((await store.limits.take('b', 2, 0.001, t0)).ok).toBe(true)
      expect((await store.limits.take('b', 2, 0.001, t0)).ok).toBe(true)
      expect(await store.limits.take('b', 2, 0.001, t0 + 500)).toEqual({ ok: false, retryAfterMs: 500 })
      expect((await store.limits.take('b', 2, 0.001, t0 + 1000)).ok).toBe(true)
    })
  })
}
