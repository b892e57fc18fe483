import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from '../runs/manifests.js'

let t: TestGateway

beforeAll(async () => {
  t = await startTestGateway()
  await t.apply(agentManifests())
  await t.api('POST', '/v1/admin/tenants', { name: 'other' })
  await t.apply(agentManifests('other').replace(/name: flex/, 'name: secretive'))
})

afterAll(async () => {
  await t?.close()
})

describe('public agent cards', () => {
  it("serves tenant default's cards without a key, and nothing of other tenants", async () => {
    const res = await fetch(`${t.url}/a2a/flex/.well-known/agent-card.json`, {
      headers: { 'a2a-version': '1.0' },
    })
    expect(res.status).toBe(200)
    const card = (await res.json()) as { name: string; securitySchemes?: Record<string, unknown> }
    expect(card.name).toBe('flex')
    expect(Object.keys(card.securitySchemes ?? {})).not.toHaveLength(0)
    // An agent only tenant `other` has: not found anonymously, exactly like a missing one.
    const hidden = await fetch(`${t.url}/a2a/secretive/.well-known/agent-card.json`)
    const missing = await fetch(`${t.url}/a2a/nope/.well-known/agent-card.json`)
    expect(hidden.status).toBe(404)
    expect(missing.status).toBe(404)
    expect(((await hidden.json()) as { error: { code: string } }).error.code).toBe(
      ((await missing.json()) as { error: { code: string } }).error.code,
    )
  })

  it('refuses bad credentials instead of falling back to anonymous', async () => {
    const res = await fetch(`${t.url}/a2a/flex/.well-known/agent-card.json`, {
      headers: { authorization: 'Bearer gk_not_a_real_key_000000000000' },
    })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/)
  })

  it('still needs a key for the extended card and everything else', async () => {
    expect((await fetch(`${t.url}/a2a/flex/extendedAgentCard`)).status).toBe(401)
    expect((await fetch(`${t.url}/a2a`)).status).toBe(401)
  })
})
