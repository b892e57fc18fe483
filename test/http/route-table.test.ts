import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

/**
 * Generated from the router table itself, so a route added later is covered without editing
 * this file: every authenticated route refuses anonymous and bogus callers, and every
 * role-restricted route refuses a member. The full identity × route matrix, with OIDC users,
 * is test/http/isolation-matrix.test.ts.
 */
describe('every route in the router table', () => {
  let gw: TestGateway
  let member: string
  beforeAll(async () => {
    gw = await startTestGateway()
    member = (await gw.api('POST', '/v1/admin/keys', { role: 'member' })).body.key
  })
  afterAll(async () => gw?.close())

  const concrete = (path: string) => path.replace(/\{[a-zA-Z_]+\}/g, 'x')

  it('has routes to check', () => {
    expect(gw.gw.routes.length).toBeGreaterThan(15)
  })

  it('refuses callers without a valid key on every authenticated route (401, JSON error, WWW-Authenticate)', async () => {
    for (const route of gw.gw.routes.filter((r) => r.auth === 'required')) {
      for (const authorization of [undefined, 'Bearer gk_not_a_real_key_000000000000', 'Bearer a.b.c']) {
        const res = await fetch(gw.url + concrete(route.path), {
          method: route.method,
          headers: {
            ...(authorization ? { authorization } : {}),
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: '{}' }),
        })
        expect(res.status, `${route.method} ${route.path} with ${authorization}`).toBe(401)
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/)
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthenticated')
      }
    }
  })

  it('refuses a member on every role-restricted route (403) and never leaks data in the error', async () => {
    for (const route of gw.gw.routes.filter((r) => r.roles && !r.roles.includes('member'))) {
      const res = await gw.api(
        route.method,
        concrete(route.path),
        route.method === 'GET' || route.method === 'DELETE' ? undefined : {},
        member,
      )
      expect(res.status, `${route.method} ${route.path}`).toBe(403)
      expect(Object.keys(res.body)).toEqual(['error'])
    }
  })

  it('serves optional-auth routes anonymously as tenant default, and refuses bad keys on them', async () => {
    const optional = gw.gw.routes.filter((r) => r.auth === 'optional')
    // Anonymous answers: no agent named {agent} in tenant default (404); a connect flow needs a
    // ticket or credentials (401); a callback without state (400).
    const anonymousStatus: Record<string, number> = {
      '/a2a/{agent}/.well-known/agent-card.json': 404,
      '/oauth/connect/{connector}': 401,
      '/oauth/callback': 400,
    }
    expect(optional.map((r) => r.path).sort()).toEqual(Object.keys(anonymousStatus).sort())
    for (const route of optional) {
      const anonymous = await fetch(gw.url + route.path, { redirect: 'manual' })
      expect(anonymous.status, route.path).toBe(anonymousStatus[route.path])
      const bad = await fetch(gw.url + route.path, {
        headers: { authorization: 'Bearer gk_not_a_real_key_000000000000' },
      })
      expect(bad.status, route.path).toBe(401)
    }
  })

  it('serves the unauthenticated routes without a key', async () => {
    for (const route of gw.gw.routes.filter((r) => r.auth === 'none')) {
      const res = await fetch(gw.url + route.path)
      // The client metadata document exists only where the public URL is https (not here).
      expect(res.status, route.path).toBe(route.path === '/oauth/client-metadata.json' ? 404 : 200)
    }
  })
})
