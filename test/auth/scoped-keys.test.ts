import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

/** Scopes add to roles: a key limited by scopes cannot mint a key that reaches further. */
describe('keys minted by a scoped caller', () => {
  let gw: TestGateway
  let scoped: string
  beforeAll(async () => {
    gw = await startTestGateway()
    const r = await gw.api('POST', '/v1/admin/keys', { role: 'admin', scopes: ['gatehouse:admin'] })
    expect(r.status).toBe(201)
    scoped = r.body.key
  })
  afterAll(async () => gw?.close())

  it('cannot mint a key without scopes (which would mean no limit), nor with scopes it lacks', async () => {
    const none = await gw.api('POST', '/v1/admin/keys', { role: 'admin' }, scoped)
    expect(none.status).toBe(403)
    expect(none.body.error.message).toContain('limited to scopes gatehouse:admin')
    const wider = await gw.api('POST', '/v1/admin/keys', { role: 'member', scopes: ['mcp'] }, scoped)
    expect(wider.status).toBe(403)
    expect(wider.body.error.message).toContain('may not have mcp')
    // The unminted keys do not exist: the scoped key still cannot reach /mcp through any key.
    const keys = await gw.api('GET', '/v1/admin/keys')
    expect(keys.body.items.filter((k: { scopes?: string[] }) => !k.scopes?.length)).toHaveLength(1)
  })

  it('can mint keys within its own scopes; an unscoped admin still mints unscoped keys', async () => {
    const within = await gw.api(
      'POST',
      '/v1/admin/keys',
      { role: 'member', scopes: ['gatehouse:admin'] },
      scoped,
    )
    expect(within.status).toBe(201)
    expect(within.body.scopes).toEqual(['gatehouse:admin'])
    const free = await gw.api('POST', '/v1/admin/keys', { role: 'member' })
    expect(free.status).toBe(201)
  })
})
