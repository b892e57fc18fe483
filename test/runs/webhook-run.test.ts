import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyWebhookSignature } from '../../src/runs/webhooks.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { agentManifests } from './manifests.js'

interface Delivery {
  headers: http.IncomingHttpHeaders
  body: string
}

let t: TestGateway
let receiver: http.Server
let url: string
const got: Delivery[] = []

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      got.push({ headers: req.headers, body })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
  // Test config allows loopback webhook targets (the default refuses them).
  t = await startTestGateway({ config: { allowPrivateNetwork: true } })
  await t.apply(agentManifests())
})

afterAll(async () => {
  await t?.close()
  await new Promise((r) => receiver?.close(r))
})

describe('run completion webhooks', () => {
  it('delivers the finished run, signed with the run secret, or else with the tenant secret', async () => {
    const secret = 'whsec_0123456789abcdef'
    const a = (
      await t.api('POST', '/v1/runs', {
        agent: 'flex',
        input: { mode: 'echo', text: 'x' },
        webhook: { url, secret },
      })
    ).body
    await expect.poll(() => got.find((d) => JSON.parse(d.body).id === a.id), { timeout: 10_000 }).toBeTruthy()
    const d = got.find((x) => JSON.parse(x.body).id === a.id)!
    expect(JSON.parse(d.body)).toMatchObject({ id: a.id, status: 'succeeded', output: { text: 'x' } })
    expect(d.headers['gatehouse-webhook-id']).toBe(`whd_run_${a.id}`)
    const sig = String(d.headers['gatehouse-signature'])
    expect(verifyWebhookSignature(secret, sig, d.body)).toBe(true)
    expect(verifyWebhookSignature('whsec_wrong_wrong_wrong', sig, d.body)).toBe(false)
    // The secret never comes back from the API.
    expect(JSON.stringify((await t.api('GET', `/v1/runs/${a.id}`)).body)).not.toContain(secret)

    const b = (await t.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'interrupt' }, webhook: url }))
      .body
    await t.api('GET', `/v1/runs/${b.id}/wait?timeout=10`)
    await t.api('POST', `/v1/runs/${b.id}/cancel`)
    await expect.poll(() => got.find((x) => JSON.parse(x.body).id === b.id), { timeout: 10_000 }).toBeTruthy()
    const e = got.find((x) => JSON.parse(x.body).id === b.id)!
    expect(JSON.parse(e.body).status).toBe('cancelled')
    const tenantSecret = (await t.api('GET', '/v1/admin/webhook-secret')).body.secret
    expect(verifyWebhookSignature(tenantSecret, String(e.headers['gatehouse-signature']), e.body)).toBe(true)
  })
})
