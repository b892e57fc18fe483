import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, systemContext, type CallContext, type Role } from '../../src/context.js'
import { LeaseLostError, type NewRun, type RunStore } from '../../src/store/runs.js'
import type { Store } from '../../src/store/types.js'

/**
 * The run store contract: claims and leases, fencing, the journal, the event log, multitask
 * strategies, and scoping by tenant and owner. Every implementation runs it.
 */
export function runsContract(name: string, open: () => Promise<Store>): void {
  describe(`run store contract: ${name}`, () => {
    let store: Store
    let runs: RunStore
    const op = systemContext('default')
    const who = (tenant: string, id: string, role: Role = 'member'): CallContext =>
      createContext({ tenant, principal: { kind: 'service', id }, roles: [role] })
    const alice = who('acme', 'alice')
    const bob = who('acme', 'bob')
    const acmeAdmin = who('acme', 'root', 'admin')
    const globex = who('globex', 'gina', 'admin')
    let n = 0
    const newRun = (over: Partial<NewRun> = {}): NewRun => ({
      id: `run-${++n}`,
      agent: 'a',
      input: { i: n },
      multitaskStrategy: 'enqueue',
      caller: { principal: { kind: 'service', id: 'alice' }, roles: ['member'], scopes: [] },
      ...over,
    })
    const now = 1_000_000

    beforeEach(async () => {
      store = await open()
      runs = store.runs
      for (const t of ['default', 'acme', 'globex']) await store.tenants.ensure(op, t)
    })
    afterEach(async () => {
      await store.close()
    })

    it('create → claim → events → finish; a claim is exclusive and fenced by its owner', async () => {
      const { run } = await runs.create(alice, newRun())
      expect(run).toMatchObject({ status: 'queued', owner: 'service:alice', attempts: 0 })
      const [claimed, ...rest] = await runs.claim('w1', now, 1000, 10)
      expect(rest).toEqual([])
      expect(claimed).toMatchObject({ id: run.id, status: 'running', attempts: 1, emitted: 0 })
      expect(claimed!.caller.principal.id).toBe('alice')
      expect(await runs.claim('w2', now, 1000, 10)).toEqual([])
      await runs.appendEvents('w1', run.id, [{ type: 'token', data: { t: 'x' } }], 1)
      await expect(runs.appendEvents('w2', run.id, [{ type: 'token', data: {} }])).rejects.toBeInstanceOf(
        LeaseLostError,
      )
      expect(await runs.finish('w2', run.id, { status: 'succeeded', output: 1 })).toBeUndefined()
      const done = await runs.finish('w1', run.id, { status: 'succeeded', output: { ok: true } })
      expect(done!.run).toMatchObject({ status: 'succeeded', output: { ok: true } })
      const events = await runs.events(alice, run.id, 0)
      expect(events.map((e) => [e.seq, e.type])).toEqual([
        [1, 'status'],
        [2, 'status'],
        [3, 'token'],
        [4, 'end'],
      ])
      expect((await runs.events(alice, run.id, 2)).map((e) => e.seq)).toEqual([3, 4])
    })

    it('an expired lease or a dead owner lets another worker take the run over, with attempts counted', async () => {
      const { run } = await runs.create(alice, newRun())
      await runs.claim('w1', now, 1000, 10)
      expect(await runs.claim('w2', now + 500, 1000, 10)).toEqual([])
      expect((await runs.claim('w2', now + 500, 1000, 10, ['w1']))[0]).toMatchObject({
        id: run.id,
        attempts: 2,
      })
      const hb = await runs.heartbeat('w1', [run.id], now + 600, 1000)
      expect(hb.lost).toEqual([run.id])
      expect((await runs.claim('w3', now + 2000, 1000, 10))[0]).toMatchObject({ id: run.id, attempts: 3 })
      expect(await runs.leaseOwners()).toEqual(['w3'])
    })

    it('journal entries are upserted by position and fenced', async () => {
      const { run } = await runs.create(alice, newRun())
      await runs.claim('w1', now, 1000, 10)
      await runs.writeJournal('w1', run.id, {
        pos: 0,
        kind: 'step',
        name: 's',
        status: 'started',
        attempt: 1,
      })
      await runs.writeJournal('w1', run.id, {
        pos: 0,
        kind: 'step',
        name: 's',
        status: 'done',
        result: [1],
        attempt: 1,
      })
      await runs.writeJournal('w1', run.id, {
        pos: 1,
        kind: 'tool',
        name: 't',
        status: 'started',
        attempt: 1,
      })
      expect(await runs.journal(run.id)).toEqual([
        { pos: 0, kind: 'step', name: 's', status: 'done', result: [1], attempt: 1 },
        { pos: 1, kind: 'tool', name: 't', status: 'started', attempt: 1 },
      ])
      await expect(
        runs.writeJournal('w2', run.id, { pos: 2, kind: 'step', name: 'x', status: 'done', attempt: 1 }),
      ).rejects.toBeInstanceOf(LeaseLostError)
    })

    it('interrupt releases the run; resume records the answer and queues it; resume of a running run conflicts', async () => {
      const { run } = await runs.create(alice, newRun())
      await runs.claim('w1', now, 1000, 10)
      await expect(runs.resume(alice, run.id, 1)).rejects.toThrow(/not interrupted/)
      await runs.writeJournal('w1', run.id, {
        pos: 0,
        kind: 'interrupt',
        name: 'interrupt',
        status: 'started',
        result: { q: 1 },
        attempt: 1,
      })
      await runs.interrupt('w1', run.id, { q: 1 })
      expect(await runs.get(alice, run.id)).toMatchObject({ status: 'interrupted', interrupt: { q: 1 } })
      expect(await runs.claim('w2', now, 1000, 10)).toEqual([])
      expect(await runs.resume(alice, run.id, 'yes')).toMatchObject({ status: 'queued' })
      expect((await runs.journal(run.id))[0]).toMatchObject({ status: 'done', result: 'yes' })
      expect((await runs.claim('w2', now, 1000, 10))[0]!.id).toBe(run.id)
    })

    it('cancel: queued at once, running by request through the heartbeat, finished conflicts', async () => {
      const a = (await runs.create(alice, newRun())).run
      expect(await runs.requestCancel(alice, a.id, 'stop')).toMatchObject({ status: 'cancelled' })
      await expect(runs.requestCancel(alice, a.id, 'again')).rejects.toThrow(/already cancelled/)
      const b = (await runs.create(alice, newRun())).run
      await runs.claim('w1', now, 1000, 10)
      expect(await runs.requestCancel(alice, b.id, 'stop')).toMatchObject({ status: 'running' })
      expect((await runs.heartbeat('w1', [b.id], now, 1000)).cancel).toEqual([b.id])
    })

    it('threads: one run at a time in order; state written under the lease; reject, interrupt and rollback', async () => {
      const t = await runs.createThread(alice, { id: 'th1', metadata: { topic: 'x' } })
      expect(t).toMatchObject({ id: 'th1', status: 'idle', state: {}, metadata: { topic: 'x' } })
      await expect(runs.createThread(alice, { id: 'th1' })).rejects.toThrow(/already exists/)
      const r1 = (await runs.create(alice, newRun({ threadId: 'th1' }))).run
      const r2 = (await runs.create(alice, newRun({ threadId: 'th1' }))).run
      const claimed = await runs.claim('w1', now, 1000, 10)
      expect(claimed.map((c) => c.id)).toEqual([r1.id])
      await runs.writeJournal(
        'w1',
        r1.id,
        { pos: 0, kind: 'state', name: 'state', status: 'done', result: { a: 1 }, attempt: 1 },
        { a: 1 },
      )
      expect((await runs.getThread(alice, 'th1'))!.state).toEqual({ a: 1 })
      await expect(
        runs.create(alice, newRun({ threadId: 'th1', multitaskStrategy: 'reject' })),
      ).rejects.toThrow(/active run/)
      await runs.finish('w1', r1.id, { status: 'succeeded' })
      const next = await runs.claim('w1', now, 1000, 10)
      expect(next.map((c) => c.id)).toEqual([r2.id])
      expect(next[0]!.stateBefore).toEqual({ a: 1 })
      await runs.writeJournal(
        'w1',
        r2.id,
        { pos: 0, kind: 'state', name: 'state', status: 'done', result: { a: 2 }, attempt: 1 },
        { a: 2 },
      )
      // rollback: r2 is deleted and the state it started from comes back
      const r3 = await runs.create(alice, newRun({ threadId: 'th1', multitaskStrategy: 'rollback' }))
      expect(r3.displaced).toEqual([r2.id])
      expect(await runs.get(alice, r2.id)).toBeUndefined()
      expect((await runs.getThread(alice, 'th1'))!.state).toEqual({ a: 1 })
      // interrupt: r3 is cancelled, r4 queued
      const r4 = await runs.create(alice, newRun({ threadId: 'th1', multitaskStrategy: 'interrupt' }))
      expect(r4.displaced).toEqual([r3.run.id])
      expect(await runs.get(alice, r3.run.id)).toMatchObject({ status: 'cancelled' })
      await expect(runs.deleteThread(alice, 'th1')).rejects.toThrow(/active run/)
    })

    it('scoping: members see their own, admins the tenant, another tenant nothing (not found, never forbidden)', async () => {
      const mine = (await runs.create(alice, newRun())).run
      await runs.createThread(alice, { id: 'tha' })
      expect(await runs.get(bob, mine.id)).toBeUndefined()
      expect(await runs.get(acmeAdmin, mine.id)).toMatchObject({ id: mine.id })
      expect(await runs.get(globex, mine.id)).toBeUndefined()
      expect(await runs.requestCancel(globex, mine.id, 'x')).toBeUndefined()
      expect(await runs.resume(globex, mine.id, 1)).toBeUndefined()
      await expect(runs.events(globex, mine.id, 0)).rejects.toThrow(/not found/)
      expect((await runs.list(bob)).items).toEqual([])
      expect((await runs.list(globex)).items).toEqual([])
      expect((await runs.list(acmeAdmin)).items.map((r) => r.id)).toEqual([mine.id])
      expect(await runs.getThread(bob, 'tha')).toBeUndefined()
      expect(await runs.getThread(globex, 'tha')).toBeUndefined()
      await expect(runs.create(globex, newRun({ threadId: 'tha' }))).rejects.toThrow(/not found/)
      expect(await runs.deleteThread(globex, 'tha')).toBe(false)
    })

    it('lists page newest first with an opaque cursor', async () => {
      for (let i = 0; i < 5; i++) await runs.create(alice, newRun())
      const first = await runs.list(alice, { limit: 2 })
      const second = await runs.list(alice, { limit: 2, before: first.next! })
      const third = await runs.list(alice, { limit: 2, before: second.next! })
      const ids = [...first.items, ...second.items, ...third.items].map((r) => r.id)
      expect(new Set(ids).size).toBe(5)
      expect(third.next).toBeUndefined()
      await expect(runs.list(alice, { before: '!!' })).rejects.toThrow(/cursor/)
    })

    it('usage accumulates per model under the lease', async () => {
      const { run } = await runs.create(alice, newRun())
      await runs.claim('w1', now, 1000, 10)
      await runs.addUsage('w1', run.id, { model: 'm1', promptTokens: 3, completionTokens: 2 })
      await runs.addUsage('w1', run.id, { model: 'm2', promptTokens: 1, completionTokens: 1 })
      expect((await runs.get(alice, run.id))!.usage).toEqual({
        promptTokens: 4,
        completionTokens: 3,
        calls: 2,
        byModel: {
          m1: { promptTokens: 3, completionTokens: 2, calls: 1 },
          m2: { promptTokens: 1, completionTokens: 1, calls: 1 },
        },
      })
    })
  })
}
