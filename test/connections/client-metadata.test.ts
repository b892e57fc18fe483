import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

/** The Client ID Metadata Document an https gateway serves for upstream authorization servers. */
describe('the gateway’s OAuth client metadata document', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startTestGateway({ config: { publicUrl: 'https://gatehouse.example' } })
  })
  afterAll(async () => gw?.close())

  it('is public, names itself as client_id and the callback as its only redirect URI', async () => {
    const res = await fetch(`${gw.url}/oauth/client-metadata.json`)
    expect(res.status).toBe(200)
    const doc = (await res.json()) as Record<string, unknown>
    expect(doc).toMatchObject({
      client_id: 'https://gatehouse.example/oauth/client-metadata.json',
      redirect_uris: ['https://gatehouse.example/oauth/callback'],
      client_name: 'Gatehouse',
    })
    expect(JSON.stringify(doc)).not.toMatch(/secret/i)
  })
})
