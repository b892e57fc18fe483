import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { safeReturnTo } from '../../src/http/routes/connections.js'
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'

describe('return_to of a connect flow', () => {
  it('keeps a path on this gateway', () => {
    expect(safeReturnTo(null)).toBeUndefined()
    expect(safeReturnTo('/ui/connections?done=1#top')).toBe('/ui/connections?done=1#top')
  })

  it('refuses anything a browser would take to another origin', () => {
    for (const v of [
      'https://evil.example/',
      '//evil.example',
      '/\\evil.example',
      '/\t/evil.example', // browsers drop the tab: //evil.example
      '/\n/evil.example',
      '/\r\n/evil.example',
      '/ /evil.example',
      '/\u0000/evil.example',
      'ui/relative',
    ]) {
      expect(() => safeReturnTo(v), JSON.stringify(v)).toThrow('return_to must be a path on this gateway')
    }
  })

  describe('on the route', () => {
    let gw: TestGateway
    beforeAll(async () => {
      gw = await startTestGateway()
    })
    afterAll(async () => gw?.close())

    it('answers 400 to a tab-smuggled return_to, before any flow starts', async () => {
      const res = await fetch(`${gw.url}/oauth/connect/anything?return_to=%2F%09%2Fevil.example`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
        redirect: 'manual',
      })
      expect(res.status).toBe(400)
      expect(await res.text()).toContain('return_to must be a path on this gateway')
    })
  })
})
