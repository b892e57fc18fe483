import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, systemContext, type CallContext } from '../../src/context.js'
import type { Store } from '../../src/store/types.js'
import { masterKeyFrom } from '../../src/vault/master-key.js'
import { seal } from '../../src/vault/seal.js'

/** The webhook outbox part of the store contract: every implementation runs it. */
export function outboxContract(name: string, open: () => Promise<Store>): void {
  describe(`webhook outbox contract: ${name}`, () => {
    let store: Store
    const op = systemContext('default')
    const ctx = (tenant: string): CallContext =>
      createContext({ tenant, principal: { kind: 'service', id: `k-${tenant}` }, roles: ['admin'] })
    const acme = ctx('acme')
    const globex = ctx('globex')
    const master = masterKeyFrom(randomBytes(32))
    const T = 1_700_000_000_000

    beforeEach(async () => {
      store = await open()
      await store.tenants.ensure(op, 'acme')
      await store.tenants.ensure(op, 'globex')
    })
    afterEach(async () => {
      await store.close()
    })

    const delivery = (id: string, extra: Record<string, unknown> = {}) => ({
      id,
      runId: 'run-1',
      url: 'https://hooks.example.com/x',
      payload: JSON.stringify({ id: 'run-1', status: 'succeeded' }),
      nextAttemptAtMs: T,
      ...extra,
    })

    it('enqueue and list are scoped by tenant; list filters by run', async () => {
      const rec = await store.webhooks.enqueue(acme, delivery('d1'))
      expect(rec).toMatchObject({
        id: 'd1',
        tenant: 'acme',
        runId: 'run-1',
        status: 'pending',
        attempts: 0,
        hasSecret: false,
        nextAttemptAtMs: T,
      })
      await store.webhooks.enqueue(acme, delivery('d2', { runId: 'run-2' }))
      await store.webhooks.enqueue(globex, delivery('d3'))
      expect((await store.webhooks.list(acme)).map((d) => d.id)).toEqual(['d1', 'd2'])
      expect((await store.webhooks.list(acme, { runId: 'run-2' })).map((d) => d.id)).toEqual(['d2'])
      expect((await store.webhooks.list(globex)).map((d) => d.id)).toEqual(['d3'])
      expect(await store.webhooks.list(globex, { runId: 'run-2' })).toEqual([])
    })

    it('secrets are stored sealed and never listed; plaintext is refused', async () => {
      const sealedSecret = seal(master, 'whsec-plaintext-1234', 'gatehouse/webhook-secret')
      const rec = await store.webhooks.enqueue(acme, delivery('s1', { sealedSecret }))
      expect(rec.hasSecret).toBe(true)
      expect(JSON.stringify(await store.webhooks.list(acme))).not.toContain(sealedSecret)
      await expect(
        store.webhooks.enqueue(acme, delivery('s2', { sealedSecret: 'whsec-plaintext-1234' })),
      ).rejects.toThrow(/sealed/)
      const [claimed] = await store.webhooks.claimDue('w1', T, 10, 1000)
      expect(claimed?.sealedSecret).toBe(sealedSecret)
    })

    it('enqueue is idempotent on the id; the id cannot be reused with other content or tenant', async () => {
      await store.webhooks.enqueue(acme, delivery('i1'))
      const again = await store.webhooks.enqueue(acme, delivery('i1'))
      expect(again.id).toBe('i1')
      expect(await store.webhooks.list(acme)).toHaveLength(1)
      await expect(store.webhooks.enqueue(acme, delivery('i1', { payload: '{"other":1}' }))).rejects.toThrow(
        /already enqueued/,
      )
      await expect(store.webhooks.enqueue(globex, delivery('i1'))).rejects.toThrow(/already in use/)
      expect(await store.webhooks.list(globex)).toEqual([])
    })

    it('claimDue leases due deliveries only, one owner at a time, counting attempts', async () => {
      await store.webhooks.enqueue(acme, delivery('c1'))
      await store.webhooks.enqueue(globex, delivery('c2', { nextAttemptAtMs: T + 5000 }))
      await store.webhooks.enqueue(acme, delivery('c3', { nextAttemptAtMs: T + 10 }))
      expect(await store.webhooks.claimDue('w1', T - 1, 10, 1000)).toEqual([])
      const first = await store.webhooks.claimDue('w1', T + 10, 1, 1000)
      expect(first.map((d) => d.id)).toEqual(['c1'])
      expect(first[0]).toMatchObject({ attempt: 1, attempts: 1, tenant: 'acme', leaseExpiresAtMs: T + 1010 })
      const second = await store.webhooks.claimDue('w2', T + 10, 10, 5000)
      expect(second.map((d) => d.id)).toEqual(['c3'])
      // c1 is leased to w1 until T+1010, c3 to w2 until T+5010; c2 is not due before T+5000.
      expect(await store.webhooks.claimDue('w2', T + 1009, 10, 1000)).toEqual([])
      // w1 died: its lease expires and w2 takes c1 over as attempt 2.
      const taken = await store.webhooks.claimDue('w2', T + 1010, 10, 1000)
      expect(taken.map((d) => [d.id, d.attempt])).toEqual([['c1', 2]])
      expect(await store.webhooks.markDelivered('w1', 'c1')).toBe(false)
      expect(await store.webhooks.markDelivered('w2', 'c1')).toBe(true)
      const all = await store.webhooks.claimDue('w3', T + 5000, 10, 1000)
      expect(all.map((d) => d.id)).toEqual(['c2'])
      expect(all[0]?.tenant).toBe('globex')
    })

    it('markFailed reschedules or kills; delivered and dead deliveries are never claimed again', async () => {
      await store.webhooks.enqueue(acme, delivery('f1'))
      await store.webhooks.enqueue(acme, delivery('f2'))
      await store.webhooks.claimDue('w1', T, 10, 60_000)
      expect(await store.webhooks.markFailed('w2', 'f1', 'HTTP 500', T + 100)).toBe(false)
      expect(await store.webhooks.markFailed('w1', 'f1', 'HTTP 500', T + 100)).toBe(true)
      expect(await store.webhooks.markFailed('w1', 'f2', 'HTTP 410', null)).toBe(true)
      const [f1, f2] = await store.webhooks.list(acme)
      expect(f1).toMatchObject({
        status: 'pending',
        lastError: 'HTTP 500',
        attempts: 1,
        nextAttemptAtMs: T + 100,
      })
      expect(f2).toMatchObject({ status: 'dead', lastError: 'HTTP 410', attempts: 1 })
      // The failed lease is released: due again at T+100, not before.
      expect(await store.webhooks.claimDue('w2', T + 99, 10, 1000)).toEqual([])
      const retry = await store.webhooks.claimDue('w2', T + 100, 10, 1000)
      expect(retry.map((d) => [d.id, d.attempt])).toEqual([['f1', 2]])
      expect(await store.webhooks.markDelivered('w2', 'f1')).toBe(true)
      expect((await store.webhooks.list(acme))[0]).toMatchObject({ status: 'delivered', attempts: 2 })
      expect((await store.webhooks.list(acme))[0]?.lastError).toBeUndefined()
      expect(await store.webhooks.claimDue('w3', T + 10_000_000, 10, 1000)).toEqual([])
      expect(await store.webhooks.markFailed('w2', 'f1', 'late', T)).toBe(false)
    })

    it('returned records are copies', async () => {
      const rec = await store.webhooks.enqueue(acme, delivery('p1'))
      rec.url = 'http://mutated/'
      rec.status = 'dead'
      const [again] = await store.webhooks.list(acme)
      expect(again).toMatchObject({ url: 'https://hooks.example.com/x', status: 'pending' })
    })
  })
}
