import { describe, expect, it } from 'vitest'
import { Router, type Route } from '../../src/http/router.js'
import { plainPath } from '../../src/http/server.js'

const route = (method: Route['method'], path: string, summary = path): Route => ({
  method,
  path,
  auth: 'none',
  summary,
  handler: async () => undefined,
})

describe('Router', () => {
  const router = new Router([
    route('GET', '/v1/keys/{id}', 'param first'),
    route('GET', '/v1/keys/new', 'shadowed literal'),
    route('POST', '/v1/keys/new', 'literal'),
    route('GET', '/.well-known/x'),
    route('POST', '/mcp'),
    route('GET', '/mcp'),
  ])

  it('takes the first route of the table that matches, whether or not it has parameters', () => {
    const shadowed = router.match('GET', '/v1/keys/new')
    expect(shadowed).toMatchObject({ route: { summary: 'param first' }, params: { id: 'new' } })
    expect(router.match('POST', '/v1/keys/new')).toMatchObject({ route: { summary: 'literal' }, params: {} })
    expect(router.match('GET', '/v1/keys/a%2Fb')).toMatchObject({ params: { id: 'a/b' } })
    expect(() => router.match('GET', '/v1/keys/%ZZ')).toThrow('malformed percent-encoding')
  })

  it("matches literal parts literally (a '.' is not any character)", () => {
    expect(router.match('GET', '/.well-known/x')).toMatchObject({ route: { path: '/.well-known/x' } })
    expect(router.match('GET', '/Xwell-known/x')).toBeUndefined()
  })

  it("tells a path that exists for other methods ('method') from an unknown one", () => {
    expect(router.match('DELETE', '/mcp')).toBe('method')
    expect(router.match('PUT', '/v1/keys/7')).toBe('method')
    expect(router.match('GET', '/mcp/')).toBeUndefined()
    expect(router.match('GET', '/nope')).toBeUndefined()
  })
})

describe('plainPath', () => {
  it('is the WHATWG pathname of every target it accepts', () => {
    for (const t of ['/mcp', '/mcp?x=1', '/mcp/github', '/v1/runs/abc-123_x~y', '/a.b/c.d', '/', '/mcp/']) {
      const p = plainPath(t)
      expect(p, t).toBeDefined()
      expect(p).toBe(new URL(t, 'http://h.invalid').pathname)
    }
  })

  it('leaves anything that needs normalising to the URL parser', () => {
    for (const t of [
      '/mcp/../v1/admin',
      '/./mcp',
      '//mcp',
      '/mcp%2F..',
      '/a\\b',
      'http://h/mcp',
      '*',
      '/.well-known/x',
      '/a..b',
      '/mcp#f',
      '/a/./b',
      '/a//b',
    ]) {
      expect(plainPath(t), t).toBeUndefined()
    }
  })
})
