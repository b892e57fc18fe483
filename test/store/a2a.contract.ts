import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext, systemContext, type CallContext, type Role } from '../../src/context.js'
import type { NewPushConfig } from '../../src/store/a2a.js'
import type { NewRun } from '../../src/store/runs.js'
import type { Store } from '../../src/store/types.js'
import { masterKeyFrom } from '../../src/vault/master-key.js'
import { seal } from '../../src/vault/seal.js'

/** The A2A part of the store contract: push configs and their cursors, message ids, the task listing. */
export function a2aContract(name: string, open: () => Promise<Store>): void {
  describe(`a2a store contract: ${name}`, () => {
    let store: Store
    const op = systemContext('default')
    const who = (tenant: string, id: string, role: Role = 'member'): CallContext =>
      createContext({ tenant, principal: { kind: 'service', id }, roles: [role] })
    const alice = who('acme', 'alice')
    const bob = who('acme', 'bob')
    const acmeAdmin = who('acme', 'root', 'admin')
    const globex = who('globex', 'gina', 'admin')
    const master = masterKeyFrom(randomBytes(32))
    const sealed = (v: string) => seal(master, v, 'gatehouse/a2a-push')
    const tick = () => new Promise((r) => setTimeout(r, 5))
    let n = 0
    const newRun = (ctx: CallContext, over: Partial<NewRun> = {}): NewRun => ({
      id: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
      agent: 'flex',
      input: { n },
      multitaskStrategy: 'enqueue',
      caller: { principal: ctx.principal, roles: [...ctx.roles], scopes: [] },
      ...over,
    })
    const config = (taskId: string, over: Partial<NewPushConfig> = {}): NewPushConfig => ({
      taskId,
      id: 'c1',
      url: 'https://hooks.example.com/a2a',
      wireVersion: '1.0',
      notifiedSeq: 1,
      lastState: 'submitted',
      ...over,
    })

    beforeEach(async () => {
      store = await open()
      for (const t of ['default', 'acme', 'globex']) await store.tenants.ensure(op, t)
    })
    afterEach(async () => {
      await store.close()
    })

    it('push configs: put, get, list, replace (the cursor stays), delete; scoped by tenant', async () => {
      const { run } = await store.runs.create(alice, newRun(alice))
      const rec = await store.a2a.putPushConfig(
        alice,
        config(run.id, {
          sealedToken: sealed('tok'),
          authScheme: 'Bearer',
          sealedCredentials: sealed('cred'),
        }),
      )
      expect(rec).toMatchObject({
        tenant: 'acme',
        taskId: run.id,
        id: 'c1',
        authScheme: 'Bearer',
        wireVersion: '1.0',
        notifiedSeq: 1,
        lastState: 'submitted',
        done: false,
      })
      expect(rec.sealedToken).toMatch(/^gh1\./)
      await store.a2a.putPushConfig(alice, config(run.id, { id: 'c2', wireVersion: '0.3' }))
      expect((await store.a2a.listPushConfigs(alice, run.id)).map((c) => c.id)).toEqual(['c1', 'c2'])
      expect(await store.a2a.listPushConfigs(globex, run.id)).toEqual([])
      expect(await store.a2a.getPushConfig(globex, run.id, 'c1')).toBeUndefined()
      expect(await store.a2a.deletePushConfig(globex, run.id, 'c1')).toBe(false)

      await store.a2a.advancePush('acme', run.id, 'c1', 5, 'working', false)
      const replaced = await store.a2a.putPushConfig(
        alice,
        config(run.id, { url: 'https://other.example.com/x', notifiedSeq: 0 }),
      )
      expect(replaced).toMatchObject({
        url: 'https://other.example.com/x',
        notifiedSeq: 5,
        lastState: 'working',
      })
      expect(replaced.sealedToken).toBeUndefined()
      expect(await store.a2a.deletePushConfig(alice, run.id, 'c1')).toBe(true)
      expect(await store.a2a.deletePushConfig(alice, run.id, 'c1')).toBe(false)
      expect((await store.a2a.listPushConfigs(alice, run.id)).map((c) => c.id)).toEqual(['c2'])
    })

    it('push configs refuse plaintext secrets', async () => {
      const { run } = await store.runs.create(alice, newRun(alice))
      await expect(store.a2a.putPushConfig(alice, config(run.id, { sealedToken: 'plain' }))).rejects.toThrow(
        /sealed/,
      )
      await expect(
        store.a2a.putPushConfig(alice, config(run.id, { sealedCredentials: 'plain' })),
      ).rejects.toThrow(/sealed/)
    })

    it('the backlog holds configs with events after their cursor (or whose run is gone); the cursor only moves forward', async () => {
      const { run } = await store.runs.create(alice, newRun(alice))
      await store.a2a.putPushConfig(alice, config(run.id))
      // The run has only event 1 (queued): nothing to deliver yet.
      expect(await store.a2a.pushBacklog(10)).toEqual([])
      await store.runs.claim('w1', Date.now(), 60_000, 10)
      await store.runs.appendEvents('w1', run.id, [{ type: 'token', data: { text: 'x' } }], 1)
      const [due, ...rest] = await store.a2a.pushBacklog(10)
      expect(rest).toEqual([])
      expect(due).toMatchObject({ tenant: 'acme', taskId: run.id, id: 'c1', runExists: true, notifiedSeq: 1 })
      await store.a2a.advancePush('acme', run.id, 'c1', 3, 'working', false)
      expect(await store.a2a.pushBacklog(10)).toEqual([])
      await store.a2a.advancePush('acme', run.id, 'c1', 2, 'submitted', false)
      expect((await store.a2a.pushConfigOf('acme', run.id, 'c1'))?.notifiedSeq).toBe(3)
      await store.runs.finish('w1', run.id, { status: 'succeeded', output: 1 })
      expect((await store.a2a.pushBacklog(10)).map((c) => c.id)).toEqual(['c1'])
      await store.a2a.advancePush('acme', run.id, 'c1', 4, 'completed', true)
      expect(await store.a2a.pushBacklog(10)).toEqual([])
      expect(await store.a2a.pushConfigOf('acme', run.id, 'c1')).toMatchObject({
        done: true,
        lastState: 'completed',
      })
      expect(await store.a2a.pushConfigOf('globex', run.id, 'c1')).toBeUndefined()

      // A config whose run was deleted (with its thread) is due once, to be closed.
      const thread = await store.runs.createThread(alice, { id: 'th-gone' })
      const { run: gone } = await store.runs.create(alice, newRun(alice, { threadId: thread.id }))
      await store.a2a.putPushConfig(alice, config(gone.id, { id: 'g' }))
      await store.runs.requestCancel(alice, gone.id, 'x')
      await store.a2a.advancePush('acme', gone.id, 'g', 2, 'canceled', false)
      expect(await store.runs.deleteThread(alice, thread.id)).toBe(true)
      const [orphan] = await store.a2a.pushBacklog(10)
      expect(orphan).toMatchObject({ taskId: gone.id, id: 'g', runExists: false })
    })

    it('message ids map to tasks per tenant and owner; the first writer wins', async () => {
      expect(await store.a2a.taskOfMessage(alice, 'm1')).toBeUndefined()
      await store.a2a.rememberMessage(alice, 'm1', 'task-1')
      await store.a2a.rememberMessage(alice, 'm1', 'task-2')
      expect(await store.a2a.taskOfMessage(alice, 'm1')).toBe('task-1')
      expect(await store.a2a.taskOfMessage(bob, 'm1')).toBeUndefined()
      expect(await store.a2a.taskOfMessage(globex, 'm1')).toBeUndefined()
      await store.a2a.rememberMessage(bob, 'm1', 'task-3')
      expect(await store.a2a.taskOfMessage(bob, 'm1')).toBe('task-3')
    })

    it('task listing: one agent, the caller’s runs (the tenant’s for admins), newest update first, paged, counted', async () => {
      const thread = await store.runs.createThread(alice, { id: 'ctx-1' })
      const r1 = (await store.runs.create(alice, newRun(alice, { threadId: thread.id }))).run
      await tick()
      const r2 = (await store.runs.create(alice, newRun(alice))).run
      await tick()
      const r3 = (await store.runs.create(alice, newRun(alice, { agent: 'other' }))).run
      await tick()
      const b1 = (await store.runs.create(bob, newRun(bob))).run
      await tick()
      await store.runs.create(globex, newRun(globex))
      await tick()
      // r1 is updated last: it comes first.
      await store.runs.requestCancel(alice, r1.id, 'stop')

      const q = { agent: 'flex', pageSize: 10 }
      expect(await store.a2a.listTaskIds(alice, q)).toEqual({ ids: [r1.id, r2.id], total: 2 })
      expect((await store.a2a.listTaskIds(bob, q)).ids).toEqual([b1.id])
      expect(await store.a2a.listTaskIds(acmeAdmin, q)).toEqual({ ids: [r1.id, b1.id, r2.id], total: 3 })
      expect((await store.a2a.listTaskIds(alice, { ...q, agent: 'other' })).ids).toEqual([r3.id])
      expect((await store.a2a.listTaskIds(globex, q)).ids).toHaveLength(1)
      expect((await store.a2a.listTaskIds(alice, { ...q, threadId: 'ctx-1' })).ids).toEqual([r1.id])

      const p1 = await store.a2a.listTaskIds(acmeAdmin, { ...q, pageSize: 2 })
      expect(p1.ids).toEqual([r1.id, b1.id])
      expect(p1.total).toBe(3)
      const p2 = await store.a2a.listTaskIds(acmeAdmin, { ...q, pageSize: 2, pageToken: p1.next! })
      expect(p2).toEqual({ ids: [r2.id], total: 3 })
      await expect(store.a2a.listTaskIds(alice, { ...q, pageToken: 'garbage' })).rejects.toThrow()

      const after = (await store.runs.get(alice, r2.id))!.updatedAt
      expect((await store.a2a.listTaskIds(acmeAdmin, { ...q, updatedAfter: after })).ids).toEqual([
        r1.id,
        b1.id,
      ])
    })

    it('task listing by state: status, error codes, interrupt types', async () => {
      const failed = (await store.runs.create(alice, newRun(alice))).run
      const rejected = (await store.runs.create(alice, newRun(alice))).run
      const waiting = (await store.runs.create(alice, newRun(alice))).run
      const auth = (await store.runs.create(alice, newRun(alice))).run
      const queued = (await store.runs.create(alice, newRun(alice, { threadId: undefined }))).run
      await store.runs.claim('w1', Date.now(), 60_000, 4)
      await store.runs.finish('w1', failed.id, {
        status: 'failed',
        error: { code: 'agent_error', message: 'x' },
      })
      await store.runs.finish('w1', rejected.id, {
        status: 'failed',
        error: { code: 'forbidden', message: 'no' },
      })
      await store.runs.interrupt('w1', waiting.id, { question: 'ok?' })
      await store.runs.interrupt('w1', auth.id, { type: 'connection_required' })
      const ids = async (states: Parameters<Store['a2a']['listTaskIds']>[1]['states']) =>
        (await store.a2a.listTaskIds(alice, { agent: 'flex', pageSize: 10, states })).ids.sort()
      expect(await ids([{ status: 'failed', errorCodeNotIn: ['forbidden'] }])).toEqual([failed.id])
      expect(await ids([{ status: 'failed', errorCodeIn: ['forbidden'] }])).toEqual([rejected.id])
      expect(await ids([{ status: 'interrupted', interruptTypeNotIn: ['connection_required'] }])).toEqual([
        waiting.id,
      ])
      expect(
        await ids([
          { status: 'interrupted', interruptTypeIn: ['connection_required'] },
          { status: 'failed', errorCodeIn: ['connection_required'] },
        ]),
      ).toEqual([auth.id])
      expect(await ids([{ status: 'queued' }])).toEqual([queued.id])
      expect(await ids([])).toEqual([])
    })
  })
}
