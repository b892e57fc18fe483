import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/cli/main.js'
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'

/** `gatehouse keys create --scopes …`: the key is shown once, with its scopes, and is limited to them. */
describe('gatehouse keys with scopes and expiry', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startTestGateway()
  })
  afterAll(async () => gw?.close())

  async function cli(args: string[]): Promise<{ code: number; out: string }> {
    let out = ''
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk)
      return true
    })
    try {
      const code = await main([...args, '--url', gw.url, '--key', ADMIN_KEY])
      return { code, out }
    } finally {
      spy.mockRestore()
    }
  }

  it('creates, lists and enforces a scoped, expiring key', async () => {
    const created = await cli([
      'keys',
      'create',
      '--role',
      'admin',
      '--name',
      'mcp-only',
      '--scopes',
      'mcp extra',
      '--expires-in',
      '3600',
    ])
    expect(created.code).toBe(0)
    expect(created.out).toMatch(/^scopes: mcp extra$/m)
    expect(created.out).toMatch(/^expires: \d{4}-/m)
    const key = /^key: (gk_\S+)$/m.exec(created.out)![1]!
    const id = /^id: (key_\S+)$/m.exec(created.out)![1]!
    expect(created.out.split(key).length - 1).toBe(1)

    const list = await cli(['keys', 'list'])
    const row = list.out.split('\n').find((l) => l.startsWith(id + '\t'))
    expect(row).toMatch(/^key_\S+\tadmin\tmcp-only\tscopes mcp extra\texpires /)
    expect(list.out).not.toContain(key)

    // an admin key limited to `mcp` cannot use the admin API
    const r = await gw.api('GET', '/v1/admin/keys', undefined, key)
    expect(r.status).toBe(403)
    expect(r.headers.get('www-authenticate')).toMatch(/insufficient_scope/)
    expect((await gw.api('GET', '/v1/runs', undefined, key)).status).toBe(200)

    const bad = await cli(['keys', 'create', '--role', 'member', '--scopes', 'a"b'])
    expect(bad.code).not.toBe(0)
  })
})
