import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

/** The long-term memory REST API (/v1/store): shapes, roles, tenant isolation, errors. */
describe('/v1/store routes', () => {
  let gw: TestGateway
  let member: string
  let auditor: string
  let acme: string

  const itemPath = (namespace: string[], key: string, extra: Record<string, string> = {}) => {
    const q = new URLSearchParams()
    for (const label of namespace) q.append('namespace', label)
    q.set('key', key)
    for (const [k, v] of Object.entries(extra)) q.set(k, v)
    return `/v1/store/items?${q}`
  }
  const newKey = async (body: Record<string, unknown>) => {
    const res = await gw.api('POST', '/v1/admin/keys', body)
    expect(res.status).toBe(201)
    return res.body.key as string
  }

  beforeAll(async () => {
    gw = await startTestGateway()
    member = await newKey({ role: 'member' })
    auditor = await newKey({ role: 'auditor' })
    acme = await newKey({ role: 'member', tenant: 'acme' })
  })
  afterAll(async () => gw?.close())

  it('PUT then GET round-trips any labels through repeated namespace parameters', async () => {
    const ns = ['rt', 'a.b', 'x/y', '&k=v+1', 'ü 😀', '%2F', '?#']
    const before = Date.now()
    const put = await gw.api(
      'PUT',
      '/v1/store/items',
      { namespace: ns, key: 'k 1', value: { a: 1, n: [true] } },
      member,
    )
    expect(put.status).toBe(204)
    expect(put.body).toBeUndefined()

    const got = await gw.api('GET', itemPath(ns, 'k 1'), undefined, member)
    expect(got.status).toBe(200)
    expect(Object.keys(got.body).sort()).toEqual([
      'created_at',
      'expires_at',
      'key',
      'namespace',
      'updated_at',
      'value',
    ])
    expect(got.body).toMatchObject({
      namespace: ns,
      key: 'k 1',
      value: { a: 1, n: [true] },
      expires_at: null,
    })
    expect(Date.parse(got.body.created_at)).toBeGreaterThanOrEqual(before - 1)
    expect(got.body.updated_at).toBe(got.body.created_at)

    // Other splits of the same characters are other namespaces.
    for (const other of [['rt', 'a', 'b'], ['rt', 'a.b', 'x', 'y'], ['rt']]) {
      const miss = await gw.api('GET', itemPath(other, 'k 1'), undefined, member)
      expect(miss.status).toBe(404)
      expect(miss.body.error.code).toBe('not_found')
    }
  })

  it('a TTL sets expires_at; null clears it; a bad TTL is refused', async () => {
    const t0 = Date.now()
    expect(
      (await gw.api('PUT', '/v1/store/items', { namespace: ['ttl'], key: 'k', value: {}, ttl: 3600 }, member))
        .status,
    ).toBe(204)
    const got = await gw.api('GET', itemPath(['ttl'], 'k'), undefined, member)
    const expires = Date.parse(got.body.expires_at)
    expect(expires).toBeGreaterThanOrEqual(t0 + 3600_000 - 1)
    expect(expires).toBeLessThanOrEqual(Date.now() + 3600_000 + 1)

    await gw.api(
      'PUT',
      '/v1/store/items',
      { namespace: ['ttl'], key: 'k', value: { v: 2 }, ttl: null },
      member,
    )
    expect((await gw.api('GET', itemPath(['ttl'], 'k'), undefined, member)).body).toMatchObject({
      value: { v: 2 },
      expires_at: null,
      created_at: got.body.created_at,
    })
    const bad = await gw.api(
      'PUT',
      '/v1/store/items',
      { namespace: ['ttl'], key: 'k', value: {}, ttl: -5 },
      member,
    )
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/ttl must be/)
  })

  it('search filters, pages and answers in snake_case; namespaces lists by prefix and depth', async () => {
    for (const [i, who] of ['ann', 'bob', 'cyd', 'dee'].entries())
      await gw.api(
        'PUT',
        '/v1/store/items',
        {
          namespace: ['srch', 'people', who],
          key: 'card',
          value: { name: who, age: 20 + i * 10, vip: i % 2 === 0 },
        },
        member,
      )
    await gw.api(
      'PUT',
      '/v1/store/items',
      { namespace: ['srchx'], key: 'card', value: { name: 'zed' } },
      member,
    )

    const search = async (body: Record<string, unknown>, key = member) => {
      const res = await gw.api('POST', '/v1/store/items/search', body, key)
      expect(res.status).toBe(200)
      return res.body.items as { namespace: string[]; value: { name: string }; updated_at: string }[]
    }
    const names = (items: { value: { name: string } }[]) => items.map((i) => i.value.name).sort()

    expect(names(await search({ namespace_prefix: ['srch'] }))).toEqual(['ann', 'bob', 'cyd', 'dee'])
    expect(names(await search({ namespace_prefix: ['srch'], filter: { vip: true } }))).toEqual(['ann', 'cyd'])
    expect(
      names(await search({ namespace_prefix: ['srch', 'people'], filter: { age: { $gte: 30, $lt: 50 } } })),
    ).toEqual(['bob', 'cyd'])
    expect(
      names(await search({ namespace_prefix: ['srch'], filter: { name: { $in: ['dee', 'zed'] } } })),
    ).toEqual(['dee'])
    const page = await search({ namespace_prefix: ['srch'], limit: 2, offset: 1 })
    expect(page).toHaveLength(2)
    expect(page[0]).toHaveProperty('updated_at')
    expect(page[0]).not.toHaveProperty('updatedAt')
    expect(names(await search({ filter: { name: 'zed' } }))).toEqual(['zed'])

    const nss = await gw.api('POST', '/v1/store/namespaces', { prefix: ['srch'], max_depth: 2 }, member)
    expect(nss.status).toBe(200)
    expect(nss.body).toEqual({ namespaces: [['srch', 'people']] })
    const deep = await gw.api(
      'POST',
      '/v1/store/namespaces',
      { prefix: ['srch'], limit: 2, offset: 1 },
      member,
    )
    expect(deep.body.namespaces).toEqual([
      ['srch', 'people', 'bob'],
      ['srch', 'people', 'cyd'],
    ])
  })

  it('DELETE by body or by query: 204, then 404', async () => {
    await gw.api('PUT', '/v1/store/items', { namespace: ['del'], key: 'a', value: {} }, member)
    await gw.api('PUT', '/v1/store/items', { namespace: ['del'], key: 'b', value: {} }, member)
    expect((await gw.api('DELETE', '/v1/store/items', { namespace: ['del'], key: 'a' }, member)).status).toBe(
      204,
    )
    const again = await gw.api('DELETE', '/v1/store/items', { namespace: ['del'], key: 'a' }, member)
    expect(again.status).toBe(404)
    expect(again.body.error.code).toBe('not_found')
    expect((await gw.api('DELETE', itemPath(['del'], 'b'), undefined, member)).status).toBe(204)
    expect((await gw.api('GET', itemPath(['del'], 'b'), undefined, member)).status).toBe(404)
  })

  it('an auditor reads but cannot write; members and admins write', async () => {
    await gw.api('PUT', '/v1/store/items', { namespace: ['aud'], key: 'k', value: { v: 1 } }, member)
    expect((await gw.api('GET', itemPath(['aud'], 'k'), undefined, auditor)).status).toBe(200)
    expect(
      (await gw.api('POST', '/v1/store/items/search', { namespace_prefix: ['aud'] }, auditor)).body.items,
    ).toHaveLength(1)
    expect((await gw.api('POST', '/v1/store/namespaces', {}, auditor)).status).toBe(200)
    const put = await gw.api(
      'PUT',
      '/v1/store/items',
      { namespace: ['aud'], key: 'k', value: { v: 2 } },
      auditor,
    )
    expect(put.status).toBe(403)
    expect(put.body.error.code).toBe('forbidden')
    const del = await gw.api('DELETE', '/v1/store/items', { namespace: ['aud'], key: 'k' }, auditor)
    expect(del.status).toBe(403)
    expect((await gw.api('GET', itemPath(['aud'], 'k'), undefined, member)).body.value).toEqual({ v: 1 })
    expect(
      (await gw.api('PUT', '/v1/store/items', { namespace: ['aud'], key: 'k', value: { v: 3 } })).status,
    ).toBe(204)
    const route = gw.gw.routes.find((r) => r.method === 'PUT' && r.path === '/v1/store/items')
    expect(route?.roles).toEqual(['admin', 'member', 'approver'])
  })

  it('tenants are isolated; an operator may name a tenant with ?tenant=', async () => {
    expect(
      (await gw.api('PUT', '/v1/store/items', { namespace: ['iso'], key: 'k', value: { t: 'acme' } }, acme))
        .status,
    ).toBe(204)
    expect((await gw.api('GET', itemPath(['iso'], 'k'), undefined, member)).status).toBe(404)
    expect(
      (await gw.api('POST', '/v1/store/items/search', { namespace_prefix: ['iso'] }, member)).body.items,
    ).toEqual([])
    expect(
      (await gw.api('POST', '/v1/store/namespaces', { prefix: ['iso'] }, member)).body.namespaces,
    ).toEqual([])
    expect((await gw.api('DELETE', '/v1/store/items', { namespace: ['iso'], key: 'k' }, member)).status).toBe(
      404,
    )
    expect((await gw.api('GET', itemPath(['iso'], 'k'), undefined, acme)).body.value).toEqual({ t: 'acme' })
    // A non-operator naming another tenant learns nothing.
    expect((await gw.api('GET', itemPath(['iso'], 'k', { tenant: 'acme' }), undefined, member)).status).toBe(
      404,
    )
    expect((await gw.api('GET', itemPath(['iso'], 'k', { tenant: 'acme' }))).body.value).toEqual({
      t: 'acme',
    })
    expect((await gw.api('GET', itemPath(['iso'], 'k'))).status).toBe(404)
  })

  it('bad input is a 400 naming the problem', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['PUT', '/v1/store/items', { namespace: ['b'], key: 'k', value: [1] }, /value/],
      ['PUT', '/v1/store/items', { namespace: 'b.c', key: 'k', value: {} }, /namespace/],
      [
        'PUT',
        '/v1/store/items',
        { namespace: ['x'.repeat(129)], key: 'k', value: {} },
        /label 1 is longer than 128/,
      ],
      ['PUT', '/v1/store/items', { namespace: [], key: 'k', value: {} }, /at least 1 label/],
      ['PUT', '/v1/store/items', { namespace: ['b'], key: '', value: {} }, /key is empty/],
      ['PUT', '/v1/store/items', { namespace: ['b'], key: 'k', value: {}, extra: 1 }, /extra|unrecognized/i],
      ['GET', '/v1/store/items?key=k', undefined, /namespace and key query parameters are required/],
      ['GET', '/v1/store/items?namespace=b', undefined, /namespace and key/],
      ['POST', '/v1/store/items/search', { limit: 5000 }, /limit must be an integer from 1 to 1000/],
      ['POST', '/v1/store/items/search', { filter: { a: { $regex: '.' } } }, /unknown operator \$regex/],
      ['POST', '/v1/store/items/search', { namespace_prefix: [''] }, /label 1 is empty/],
      ['POST', '/v1/store/namespaces', { max_depth: 0 }, /max depth/],
    ]
    for (const [method, path, body, message] of cases) {
      const res = await gw.api(method, path, body, member)
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400)
      expect(res.body.error.code).toBe('bad_request')
      expect(res.body.error.message).toMatch(message)
    }
    const raw = await fetch(gw.url + '/v1/store/items', {
      method: 'PUT',
      headers: { authorization: `Bearer ${member}`, 'content-type': 'application/json' },
      body: '{"namespace": [',
    })
    expect(raw.status).toBe(400)
  })
})
