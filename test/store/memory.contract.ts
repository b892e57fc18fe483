import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createContext, inTenant, systemContext, type CallContext, type Role } from '../../src/context.js'
import type { MemoryRecord, Store } from '../../src/store/types.js'

/**
 * The long-term memory contract (`store.memory`): every Store implementation runs it.
 * Implementations take time from the JS clock (Date.now), so the TTL tests drive a fake clock.
 */
export function memoryContract(name: string, open: () => Promise<Store>): void {
  describe(`memory store contract: ${name}`, () => {
    let store: Store
    const T0 = Date.parse('2030-01-01T00:00:00.000Z')
    const at = (ms: number) => new Date(ms).toISOString()
    const ctxOf = (tenant: string, role: Role = 'member'): CallContext =>
      createContext({ tenant, principal: { kind: 'service', id: `k-${tenant}` }, roles: [role] })
    const acme = ctxOf('acme')
    const globex = ctxOf('globex')
    const badRequest = (message: RegExp) => ({ code: 'bad_request', message: expect.stringMatching(message) })
    const ids = (items: MemoryRecord[]) => items.map((i) => `${i.namespace.join('|')}:${i.key}`)

    beforeEach(async () => {
      vi.useFakeTimers({ toFake: ['Date'] })
      vi.setSystemTime(T0)
      store = await open()
    })
    afterEach(async () => {
      vi.useRealTimers()
      await store.close()
    })

    it('put, get, overwrite: updated_at moves, created_at stays, results are copies', async () => {
      const put = await store.memory.put(acme, {
        namespace: ['users', 'u1'],
        key: 'prefs',
        value: { theme: 'dark', n: 1 },
      })
      expect(put).toEqual({
        namespace: ['users', 'u1'],
        key: 'prefs',
        value: { theme: 'dark', n: 1 },
        createdAt: at(T0),
        updatedAt: at(T0),
      })
      const got = await store.memory.get(acme, ['users', 'u1'], 'prefs')
      expect(got).toEqual(put)
      got!.value.theme = 'mutated'
      got!.namespace.push('x')
      expect((await store.memory.get(acme, ['users', 'u1'], 'prefs'))!.value.theme).toBe('dark')

      vi.setSystemTime(T0 + 5000)
      await store.memory.put(acme, { namespace: ['users', 'u1'], key: 'prefs', value: { theme: 'light' } })
      expect(await store.memory.get(acme, ['users', 'u1'], 'prefs')).toEqual({
        namespace: ['users', 'u1'],
        key: 'prefs',
        value: { theme: 'light' },
        createdAt: at(T0),
        updatedAt: at(T0 + 5000),
      })
      expect(await store.memory.get(acme, ['users', 'u1'], 'other')).toBeUndefined()
      expect(await store.memory.get(acme, ['users'], 'prefs')).toBeUndefined()
      expect(await store.memory.get(acme, ['users', 'u1', 'prefs'], 'prefs')).toBeUndefined()
    })

    it('namespace prefixes match whole labels only, and any label round-trips', async () => {
      const spaces = [
        ['a'],
        ['ab'],
        ['a', 'bc'],
        ['ab', 'c'],
        ['a', 'b', 'c'],
        ['a.b'],
        ['a', 'b.c'],
        ['a/b'],
        ['x\u0001y'],
        ['x', 'y'],
        ['x\u0002', '\u0000'],
        ['ünï', '😀', '%2F', '&k=v'],
      ]
      for (const ns of spaces) await store.memory.put(acme, { namespace: ns, key: 'k', value: { ns } })
      const under = async (prefix: string[]) =>
        (await store.memory.search(acme, { namespacePrefix: prefix, limit: 100 }))
          .map((i) => JSON.stringify(i.namespace))
          .sort()
      const j = (...nss: string[][]) => nss.map((n) => JSON.stringify(n)).sort()

      expect(await under(['a'])).toEqual(j(['a'], ['a', 'bc'], ['a', 'b', 'c'], ['a', 'b.c']))
      expect(await under(['ab'])).toEqual(j(['ab'], ['ab', 'c']))
      expect(await under(['a', 'b'])).toEqual(j(['a', 'b', 'c']))
      expect(await under(['a', 'bc'])).toEqual(j(['a', 'bc']))
      expect(await under(['a.b'])).toEqual(j(['a.b']))
      expect(await under(['a/b'])).toEqual(j(['a/b']))
      expect(await under(['x'])).toEqual(j(['x', 'y']))
      expect(await under(['x\u0001y'])).toEqual(j(['x\u0001y']))
      expect(await under(['x\u0002'])).toEqual(j(['x\u0002', '\u0000']))
      expect(await under(['a', 'b', 'c', 'd'])).toEqual([])
      expect(await under([])).toEqual(j(...spaces))
      for (const ns of spaces) expect((await store.memory.get(acme, ns, 'k'))?.value).toEqual({ ns })
    })

    it('filters: exact matches are type-strict; operators $eq $ne $gt $gte $lt $lte $in', async () => {
      const items: Record<string, Record<string, unknown>> = {
        i1: { kind: 'note', score: 1, done: true, tag: null, meta: { a: 1 }, list: [1, 2], name: 'alice' },
        i2: { kind: 'note', score: 2.5, done: false, name: 'bob' },
        i3: { kind: 'task', score: 10, done: true, name: 'carol' },
        i4: { kind: 'task', score: '10', done: 1, name: 'dave' },
        i5: { other: 'x' },
      }
      for (const [key, value] of Object.entries(items))
        await store.memory.put(acme, { namespace: ['docs'], key, value })
      const find = async (filter: Record<string, unknown>) =>
        (await store.memory.search(acme, { namespacePrefix: ['docs'], filter, limit: 100 }))
          .map((i) => i.key)
          .sort()

      expect(await find({ kind: 'note' })).toEqual(['i1', 'i2'])
      expect(await find({ kind: 'note', done: true })).toEqual(['i1'])
      expect(await find({ done: true })).toEqual(['i1', 'i3'])
      expect(await find({ done: 1 })).toEqual(['i4'])
      expect(await find({ score: 10 })).toEqual(['i3'])
      expect(await find({ score: '10' })).toEqual(['i4'])
      expect(await find({ tag: null })).toEqual(['i1'])
      expect(await find({ meta: { a: 1 } })).toEqual(['i1'])
      expect(await find({ meta: { a: 2 } })).toEqual([])
      expect(await find({ list: [1, 2] })).toEqual(['i1'])
      expect(await find({ list: [2, 1] })).toEqual([])
      expect(await find({ missing: 'x' })).toEqual([])
      expect(await find({})).toEqual(['i1', 'i2', 'i3', 'i4', 'i5'])

      expect(await find({ kind: { $eq: 'task' } })).toEqual(['i3', 'i4'])
      expect(await find({ kind: { $ne: 'note' } })).toEqual(['i3', 'i4', 'i5'])
      expect(await find({ score: { $gt: 1 } })).toEqual(['i2', 'i3'])
      expect(await find({ score: { $gte: 1 } })).toEqual(['i1', 'i2', 'i3'])
      expect(await find({ score: { $lt: 10 } })).toEqual(['i1', 'i2'])
      expect(await find({ score: { $lte: 10, $gt: 1 } })).toEqual(['i2', 'i3'])
      expect(await find({ score: { $gte: '1' } })).toEqual(['i4'])
      expect(await find({ name: { $gt: 'b', $lt: 'd' } })).toEqual(['i2', 'i3'])
      expect(await find({ name: { $in: ['alice', 'dave', 'zed'] } })).toEqual(['i1', 'i4'])
      expect(await find({ score: { $in: [1, '10'] } })).toEqual(['i1', 'i4'])
      expect(await find({ name: { $in: [] } })).toEqual([])
      expect(await find({ kind: 'task', score: { $ne: '10' } })).toEqual(['i3'])

      await expect(find({ score: { $regex: 'x' } })).rejects.toMatchObject(
        badRequest(/unknown operator \$regex/),
      )
      await expect(find({ score: { $gt: 1, x: 2 } })).rejects.toMatchObject(badRequest(/mixes operators/))
      await expect(find({ score: { $gt: true } })).rejects.toMatchObject(badRequest(/\$gt needs a number/))
      await expect(find({ score: { $in: 'x' } })).rejects.toMatchObject(badRequest(/\$in needs an array/))
      await expect(find({ score: Number.NaN })).rejects.toMatchObject(badRequest(/not a JSON number/))
      await expect(
        store.memory.search(acme, { namespacePrefix: [], filter: [1] as unknown as Record<string, unknown> }),
      ).rejects.toMatchObject(badRequest(/filter must be an object/))
    })

    it('search orders by latest update and pages with limit and offset', async () => {
      for (let i = 0; i < 15; i++) {
        vi.setSystemTime(T0 + i * 1000)
        await store.memory.put(acme, {
          namespace: ['p'],
          key: `k${String(i).padStart(2, '0')}`,
          value: { i },
        })
      }
      const keys = async (q: { limit?: number; offset?: number }) =>
        (await store.memory.search(acme, { namespacePrefix: ['p'], ...q })).map((i) => i.key)
      const newestFirst = Array.from({ length: 15 }, (_, i) => `k${String(14 - i).padStart(2, '0')}`)
      expect(await keys({})).toEqual(newestFirst.slice(0, 10))
      expect(await keys({ limit: 4, offset: 3 })).toEqual(newestFirst.slice(3, 7))
      expect(await keys({ limit: 10, offset: 10 })).toEqual(newestFirst.slice(10))
      expect(await keys({ limit: 1000, offset: 15 })).toEqual([])
      // Touching an old item moves it to the front.
      vi.setSystemTime(T0 + 60_000)
      await store.memory.put(acme, { namespace: ['p'], key: 'k00', value: { i: 0, again: true } })
      expect(await keys({ limit: 2 })).toEqual(['k00', 'k14'])
      await expect(keys({ limit: 0 })).rejects.toMatchObject(
        badRequest(/limit must be an integer from 1 to 1000/),
      )
      await expect(keys({ limit: 1001 })).rejects.toMatchObject(badRequest(/limit/))
      await expect(keys({ limit: 2.5 })).rejects.toMatchObject(badRequest(/limit/))
      await expect(keys({ offset: -1 })).rejects.toMatchObject(badRequest(/offset/))
    })

    it('TTL: expired items vanish at once from get, search, namespaces and delete; the sweeper reclaims them', async () => {
      await store.memory.put(acme, { namespace: ['t'], key: 'short', value: { v: 1 }, ttlSeconds: 60 })
      await store.memory.put(acme, { namespace: ['t2'], key: 'long', value: { v: 2 }, ttlSeconds: 3600 })
      await store.memory.put(acme, { namespace: ['t'], key: 'forever', value: { v: 3 } })
      expect((await store.memory.get(acme, ['t'], 'short'))?.expiresAt).toBe(at(T0 + 60_000))
      expect((await store.memory.get(acme, ['t'], 'forever'))?.expiresAt).toBeUndefined()

      vi.setSystemTime(T0 + 59_999)
      expect(await store.memory.get(acme, ['t'], 'short')).toBeDefined()
      vi.setSystemTime(T0 + 60_000)
      expect(await store.memory.get(acme, ['t'], 'short')).toBeUndefined()
      expect(ids(await store.memory.search(acme, { namespacePrefix: [] }))).toEqual(['t:forever', 't2:long'])
      expect(await store.memory.search(acme, { namespacePrefix: [], filter: { v: 1 } })).toEqual([])
      expect(await store.memory.listNamespaces(acme)).toEqual([['t'], ['t2']])
      expect(await store.memory.delete(acme, ['t'], 'short')).toBe(false)

      // Re-putting an expired item creates it anew; a put without ttl clears an earlier TTL.
      await store.memory.put(acme, { namespace: ['t'], key: 'short', value: { v: 4 }, ttlSeconds: 1 })
      expect(await store.memory.get(acme, ['t'], 'short')).toMatchObject({
        createdAt: at(T0 + 60_000),
        expiresAt: at(T0 + 61_000),
      })
      await store.memory.put(acme, { namespace: ['t'], key: 'short', value: { v: 5 } })
      vi.setSystemTime(T0 + 7200_000)
      expect(await store.memory.get(acme, ['t'], 'short')).toMatchObject({ value: { v: 5 } })
      expect((await store.memory.get(acme, ['t'], 'short'))?.expiresAt).toBeUndefined()
      expect(await store.memory.get(acme, ['t2'], 'long')).toBeUndefined()

      await store.memory.put(globex, { namespace: ['g'], key: 'x', value: {}, ttlSeconds: 0.5 })
      await store.memory.put(acme, { namespace: ['g'], key: 'y', value: {}, ttlSeconds: 10 })
      expect(await store.memory.sweepExpired(T0 + 7200_000 + 499)).toBe(1) // acme t2/long
      expect(await store.memory.sweepExpired()).toBe(0)
      vi.setSystemTime(T0 + 7200_000 + 500)
      expect(await store.memory.sweepExpired()).toBe(1) // globex g/x: every tenant is swept
      expect(await store.memory.sweepExpired(T0 + 7200_000 + 10_000)).toBe(1)
      expect(await store.memory.sweepExpired(T0 + 10 * 365 * 86400_000)).toBe(0)
      expect(ids(await store.memory.search(acme, { namespacePrefix: [] }))).toEqual(['t:short', 't:forever'])
    })

    it('delete removes one item and reports whether it existed', async () => {
      await store.memory.put(acme, { namespace: ['d'], key: 'a', value: { x: 1 } })
      await store.memory.put(acme, { namespace: ['d'], key: 'b', value: { x: 2 } })
      await store.memory.put(acme, { namespace: ['d', 'sub'], key: 'a', value: { x: 3 } })
      expect(await store.memory.delete(acme, ['d'], 'a')).toBe(true)
      expect(await store.memory.delete(acme, ['d'], 'a')).toBe(false)
      expect(await store.memory.delete(acme, ['d'], 'zzz')).toBe(false)
      expect(await store.memory.get(acme, ['d'], 'a')).toBeUndefined()
      expect(ids(await store.memory.search(acme, { namespacePrefix: ['d'] })).sort()).toEqual([
        'd:b',
        'd|sub:a',
      ])
    })

    it('listNamespaces: distinct, sorted label by label, prefix, maxDepth, limit and offset', async () => {
      const spaces = [
        ['a-b'],
        ['a', 'b', 'c'],
        ['a', 'b', 'd'],
        ['a'],
        ['a', 'b'],
        ['b', 'x', 'y', 'z'],
        ['ab', 'c'],
      ]
      for (const ns of spaces) {
        await store.memory.put(acme, { namespace: ns, key: 'k1', value: {} })
        await store.memory.put(acme, { namespace: ns, key: 'k2', value: {} })
      }
      const all = [
        ['a'],
        ['a', 'b'],
        ['a', 'b', 'c'],
        ['a', 'b', 'd'],
        ['a-b'],
        ['ab', 'c'],
        ['b', 'x', 'y', 'z'],
      ]
      expect(await store.memory.listNamespaces(acme)).toEqual(all)
      expect(await store.memory.listNamespaces(acme, { prefix: ['a'] })).toEqual(all.slice(0, 4))
      expect(await store.memory.listNamespaces(acme, { prefix: ['a', 'b'], maxDepth: 2 })).toEqual([
        ['a', 'b'],
      ])
      expect(await store.memory.listNamespaces(acme, { maxDepth: 1 })).toEqual([
        ['a'],
        ['a-b'],
        ['ab'],
        ['b'],
      ])
      expect(await store.memory.listNamespaces(acme, { maxDepth: 2 })).toEqual([
        ['a'],
        ['a', 'b'],
        ['a-b'],
        ['ab', 'c'],
        ['b', 'x'],
      ])
      expect(await store.memory.listNamespaces(acme, { maxDepth: 2, limit: 2, offset: 2 })).toEqual([
        ['a-b'],
        ['ab', 'c'],
      ])
      expect(await store.memory.listNamespaces(acme, { prefix: ['zzz'] })).toEqual([])
      await expect(store.memory.listNamespaces(acme, { maxDepth: 0 })).rejects.toMatchObject(
        badRequest(/max depth/),
      )
      await expect(store.memory.listNamespaces(acme, { limit: 5000 })).rejects.toMatchObject(
        badRequest(/limit/),
      )
    })

    it('tenant isolation: another tenant sees nothing and cannot delete; operators reach a tenant they name', async () => {
      await store.memory.put(acme, { namespace: ['shared'], key: 'k', value: { owner: 'acme' } })
      expect(await store.memory.get(globex, ['shared'], 'k')).toBeUndefined()
      expect(await store.memory.search(globex, { namespacePrefix: [] })).toEqual([])
      expect(
        await store.memory.search(globex, { namespacePrefix: ['shared'], filter: { owner: 'acme' } }),
      ).toEqual([])
      expect(await store.memory.listNamespaces(globex)).toEqual([])
      expect(await store.memory.delete(globex, ['shared'], 'k')).toBe(false)
      expect((await store.memory.get(acme, ['shared'], 'k'))?.value).toEqual({ owner: 'acme' })

      // The same namespace and key in another tenant is a different item.
      await store.memory.put(globex, { namespace: ['shared'], key: 'k', value: { owner: 'globex' } })
      expect((await store.memory.get(acme, ['shared'], 'k'))?.value).toEqual({ owner: 'acme' })
      expect((await store.memory.get(globex, ['shared'], 'k'))?.value).toEqual({ owner: 'globex' })
      expect(await store.memory.delete(globex, ['shared'], 'k')).toBe(true)
      expect((await store.memory.get(acme, ['shared'], 'k'))?.value).toEqual({ owner: 'acme' })

      const op = systemContext('default')
      expect(await store.memory.get(op, ['shared'], 'k')).toBeUndefined()
      expect((await store.memory.get(inTenant(op, 'acme'), ['shared'], 'k'))?.value).toEqual({
        owner: 'acme',
      })
    })

    it('refuses bad input with bad_request errors that name the problem', async () => {
      const put = (item: Record<string, unknown>) =>
        store.memory.put(acme, { namespace: ['n'], key: 'k', value: {}, ...item } as never)
      await expect(put({ namespace: [] })).rejects.toMatchObject(
        badRequest(/namespace needs at least 1 label/),
      )
      await expect(put({ namespace: 'a.b' })).rejects.toMatchObject(badRequest(/namespace must be an array/))
      await expect(put({ namespace: ['a', ''] })).rejects.toMatchObject(
        badRequest(/namespace label 2 is empty/),
      )
      await expect(put({ namespace: ['x'.repeat(129)] })).rejects.toMatchObject(
        badRequest(/label 1 is longer than 128/),
      )
      await expect(put({ namespace: ['😀'.repeat(128)] })).resolves.toBeDefined()
      await expect(put({ namespace: Array.from({ length: 11 }, () => 'a') })).rejects.toMatchObject(
        badRequest(/11 labels; at most 10/),
      )
      await expect(put({ namespace: Array.from({ length: 10 }, () => 'a') })).resolves.toBeDefined()
      await expect(put({ namespace: ['a', 7] })).rejects.toMatchObject(badRequest(/label 2 must be a string/))
      await expect(put({ namespace: ['a\uD800'] })).rejects.toMatchObject(badRequest(/well-formed/))
      await expect(put({ key: '' })).rejects.toMatchObject(badRequest(/key is empty/))
      await expect(put({ key: 5 })).rejects.toMatchObject(badRequest(/key must be a string/))
      await expect(put({ value: [1] })).rejects.toMatchObject(
        badRequest(/value must be a JSON object, got an array/),
      )
      await expect(put({ value: null })).rejects.toMatchObject(badRequest(/got null/))
      await expect(put({ value: 'text' })).rejects.toMatchObject(badRequest(/got string/))
      await expect(put({ value: { n: 1n } })).rejects.toMatchObject(badRequest(/not serialisable/))
      await expect(put({ value: { big: 'x'.repeat(1024 * 1024) } })).rejects.toMatchObject(
        badRequest(/limit is 1048576 bytes/),
      )
      await expect(put({ value: { big: 'x'.repeat(1024 * 1024 - 20) } })).resolves.toBeDefined()
      for (const ttlSeconds of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '10'])
        await expect(put({ ttlSeconds })).rejects.toMatchObject(badRequest(/ttl must be/))
      await expect(store.memory.get(acme, [], 'k')).rejects.toMatchObject(badRequest(/at least 1 label/))
      await expect(store.memory.delete(acme, ['a'], '')).rejects.toMatchObject(badRequest(/key is empty/))
      await expect(store.memory.search(acme, { namespacePrefix: [''] })).rejects.toMatchObject(
        badRequest(/namespace prefix label 1 is empty/),
      )
      // Nothing half-written by the refused calls.
      expect((await store.memory.listNamespaces(acme)).map((n) => n.length).sort()).toEqual([1, 1, 10])
    })
  })
}
