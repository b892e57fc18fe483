import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { ROOT } from '../helpers/process.js'

const FIXTURE = join(ROOT, 'test/fixtures/upstream-server.mjs')

/** Raw 2025-11-25 MCP POST; returns status, the session id header and the parsed JSON-RPC message. */
async function mcpPost(url: string, key: string | undefined, message: unknown, sessionId?: string) {
  const res = await fetch(url + '/mcp', {
    method: 'POST',
    headers: {
      ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...(sessionId ? { 'mcp-session-id': sessionId } : {}),
    },
    body: JSON.stringify(message),
  })
  const text = await res.text()
  let body: any
  // SSE: the SDK sends a priming event with empty data first; the JSON-RPC message is the last data line
  const data = [...text.matchAll(/^data: ?(.+)$/gm)].map((m) => m[1]!).filter((d) => d.trim())
  try {
    body = JSON.parse(data.length ? data[data.length - 1]! : text)
  } catch {
    body = text
  }
  return { status: res.status, sessionId: res.headers.get('mcp-session-id'), body, headers: res.headers }
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-test', version: '1' } },
}

async function openSession(url: string, key: string): Promise<string> {
  const init = await mcpPost(url, key, INITIALIZE)
  expect(init.status).toBe(200)
  expect(init.sessionId).toBeTruthy()
  const ack = await mcpPost(
    url,
    key,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    init.sessionId!,
  )
  expect(ack.status).toBe(202)
  return init.sessionId!
}

async function toolNames(url: string, key: string): Promise<string[]> {
  const sid = await openSession(url, key)
  const r = await mcpPost(url, key, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }, sid)
  expect(r.status).toBe(200)
  return (r.body.result.tools as { name: string }[]).map((t) => t.name)
}

/** Every byte the SQLite store wrote (main file, WAL and shared memory). */
function storeBytes(dataDir: string): Buffer {
  const files = readdirSync(dataDir).filter((f) => f.startsWith('gatehouse.db'))
  expect(files).toContain('gatehouse.db')
  return Buffer.concat(files.map((f) => readFileSync(join(dataDir, f))))
}

describe('API keys and roles', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startTestGateway()
  })
  afterAll(async () => gw?.close())

  const createKey = async (body: Record<string, unknown>, key = ADMIN_KEY) => {
    const r = await gw.api('POST', '/v1/admin/keys', body, key)
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    return r.body as { id: string; key: string; tenant: string; role: string; expires_at: string | null }
  }

  it('POST /v1/admin/keys returns a gk_ key once; the store holds only its hash', async () => {
    const r = await gw.api('POST', '/v1/admin/keys', { role: 'member', name: 'ci bot' })
    expect(r.status).toBe(201)
    expect(r.body.key).toMatch(/^gk_[A-Za-z0-9_-]{40,}$/)
    expect(r.body).toMatchObject({
      tenant: 'default',
      role: 'member',
      name: 'ci bot',
      revoked_at: null,
      expires_at: null,
    })
    expect(r.body.id).toMatch(/^key_/)
    const key: string = r.body.key
    const bytes = storeBytes(gw.dataDir)
    // the hash is there (so we are looking at the right bytes) ...
    const hash = createHash('sha256').update(key).digest('hex')
    expect(bytes.includes(Buffer.from(hash))).toBe(true)
    // ... and neither the key nor its random part is
    expect(bytes.includes(Buffer.from(key))).toBe(false)
    expect(bytes.includes(Buffer.from(key.slice(3)))).toBe(false)
    // nor the bootstrap key
    expect(bytes.includes(Buffer.from(ADMIN_KEY))).toBe(false)
  })

  it('GET /v1/admin/keys lists metadata only, never a key or a hash', async () => {
    const created = await createKey({ role: 'approver', name: 'listed' })
    const r = await gw.api('GET', '/v1/admin/keys')
    expect(r.status).toBe(200)
    const mine = r.body.items.find((k: { id: string }) => k.id === created.id)
    expect(mine).toMatchObject({
      id: created.id,
      tenant: 'default',
      name: 'listed',
      role: 'approver',
      revoked_at: null,
    })
    expect(r.body.items.some((k: { id: string }) => k.id === 'bootstrap')).toBe(true)
    const text = JSON.stringify(r.body)
    expect(text).not.toContain(created.key)
    expect(text).not.toContain(createHash('sha256').update(created.key).digest('hex'))
    expect(text).not.toContain('gk_')
    for (const item of r.body.items) {
      expect(Object.keys(item).sort()).toEqual([
        'created_at',
        'expires_at',
        'id',
        'name',
        'revoked_at',
        'role',
        'scopes',
        'tenant',
      ])
    }
  })

  it('rejects a bad key request by path', async () => {
    const r = await gw.api('POST', '/v1/admin/keys', { role: 'superuser' })
    expect(r.status).toBe(400)
    expect(r.body.error.message).toMatch(/role/)
    const r2 = await gw.api('POST', '/v1/admin/keys', { role: 'member', operator: true })
    expect(r2.status).toBe(400)
    expect(r2.body.error.message).toMatch(/operator/)
  })

  it('a member key gets 403 on admin routes but 200 on /mcp initialize', async () => {
    const member = await createKey({ role: 'member' })
    for (const [method, path, body] of [
      ['GET', '/v1/admin/keys', undefined],
      ['POST', '/v1/admin/keys', { role: 'admin' }],
      ['GET', '/v1/admin/connectors', undefined],
      ['GET', '/v1/admin/tenants', undefined],
      ['POST', '/v1/admin/manifests', 'apiVersion: gatehouse/v1\nkind: Tenant\nmetadata: { name: sneaky }\n'],
      ['DELETE', `/v1/admin/keys/${member.id}`, undefined],
      ['GET', '/v1/audit', undefined],
    ] as const) {
      const r = await gw.api(method, path, body, member.key)
      expect(r.status, `${method} ${path}`).toBe(403)
      expect(r.body.error.code).toBe('forbidden')
    }
    // its own key still works: it was not revoked by the refused DELETE
    const init = await mcpPost(gw.url, member.key, INITIALIZE)
    expect(init.status).toBe(200)
    expect(init.body.result.protocolVersion).toBeTruthy()
    expect(init.sessionId).toBeTruthy()
    // and the refused manifest created nothing
    const tenants = await gw.api('GET', '/v1/admin/tenants')
    expect(tenants.body.items.map((t: { name: string }) => t.name)).not.toContain('sneaky')
  })

  it('role matrix: only admin keys reach the admin API; admins and auditors the audit log; everyone /mcp', async () => {
    const expected: Record<string, { admin: number; audit: number; mcp: number }> = {
      admin: { admin: 200, audit: 200, mcp: 200 },
      member: { admin: 403, audit: 403, mcp: 200 },
      approver: { admin: 403, audit: 403, mcp: 200 },
      auditor: { admin: 403, audit: 200, mcp: 200 },
    }
    for (const [role, want] of Object.entries(expected)) {
      const k = await createKey({ role })
      expect((await gw.api('GET', '/v1/admin/keys', undefined, k.key)).status, `${role} admin`).toBe(
        want.admin,
      )
      expect((await gw.api('GET', '/v1/audit', undefined, k.key)).status, `${role} audit`).toBe(want.audit)
      expect((await mcpPost(gw.url, k.key, INITIALIZE)).status, `${role} mcp`).toBe(want.mcp)
    }
  })

  it('an auditor reads the audit log but cannot apply manifests', async () => {
    const auditor = await createKey({ role: 'auditor' })
    const audit = await gw.api('GET', '/v1/audit', undefined, auditor.key)
    expect(audit.status).toBe(200)
    expect(Array.isArray(audit.body.items)).toBe(true)
    const traces = await gw.api('GET', '/v1/traces', undefined, auditor.key)
    expect(traces.status).toBe(200)
    const apply = await gw.api(
      'POST',
      '/v1/admin/manifests',
      `apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: auditor-made }\nspec: { transport: stdio, command: node }\n`,
      auditor.key,
    )
    expect(apply.status).toBe(403)
    expect(apply.body.error.code).toBe('forbidden')
    expect(
      (await gw.api('GET', '/v1/admin/connectors')).body.items.map((c: { name: string }) => c.name),
    ).not.toContain('auditor-made')
    expect((await gw.api('POST', '/v1/admin/keys', { role: 'admin' }, auditor.key)).status).toBe(403)
  })

  it('a revoked key gets 401 at once (even right after a cached successful use)', async () => {
    const k = await createKey({ role: 'auditor' })
    expect((await gw.api('GET', '/v1/audit', undefined, k.key)).status).toBe(200)
    const del = await gw.api('DELETE', `/v1/admin/keys/${k.id}`)
    expect(del.status).toBe(204)
    const after = await gw.api('GET', '/v1/audit', undefined, k.key)
    expect(after.status).toBe(401)
    expect(after.body.error.code).toBe('unauthenticated')
    expect((await mcpPost(gw.url, k.key, INITIALIZE)).status).toBe(401)
    const listed = (await gw.api('GET', '/v1/admin/keys')).body.items.find(
      (x: { id: string }) => x.id === k.id,
    )
    expect(listed.revoked_at).toBeTruthy()
    // revoking twice is not found (already revoked)
    expect((await gw.api('DELETE', `/v1/admin/keys/${k.id}`)).status).toBe(404)
  })

  it('an expired key gets 401', async () => {
    const k = await createKey({ role: 'auditor', expires_in: 1 })
    expect(k.expires_at).toBeTruthy()
    expect(Date.parse(k.expires_at!) - Date.now()).toBeLessThanOrEqual(1000)
    // used (and cached) while valid
    expect((await gw.api('GET', '/v1/audit', undefined, k.key)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 1300))
    const r = await gw.api('GET', '/v1/audit', undefined, k.key)
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('unauthenticated')
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/)
  })

  it('missing, malformed and unknown bearer tokens get 401 with WWW-Authenticate: Bearer', async () => {
    const cases: (string | undefined)[] = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      `Basic ${Buffer.from('admin:' + ADMIN_KEY).toString('base64')}`,
      `Bearer ${ADMIN_KEY} extra`,
      `Token ${ADMIN_KEY}`,
      'Bearer gk_this_key_does_not_exist_0000000000000000',
      'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln',
      `Bearer ${'x'.repeat(9000)}`,
      `Bearer ${ADMIN_KEY}x`,
    ]
    for (const authorization of cases) {
      for (const [method, path] of [
        ['GET', '/v1/admin/keys'],
        ['POST', '/mcp'],
      ] as const) {
        const res = await fetch(gw.url + path, {
          method,
          headers: {
            ...(authorization !== undefined ? { authorization } : {}),
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          ...(method === 'POST' ? { body: JSON.stringify(INITIALIZE) } : {}),
        })
        const label = `${method} ${path} with ${authorization === undefined ? '(no header)' : JSON.stringify(authorization.slice(0, 40))}`
        expect(res.status, label).toBe(401)
        expect(res.headers.get('www-authenticate'), label).toMatch(/^Bearer\b/)
        const body = (await res.json()) as { error: { code: string; message: string } }
        expect(body.error.code, label).toBe('unauthenticated')
        expect(typeof body.error.message).toBe('string')
        expect(body.error.message).not.toContain(ADMIN_KEY)
      }
    }
  })

  it('the bootstrap key cannot be revoked through the API', async () => {
    const r = await gw.api('DELETE', '/v1/admin/keys/bootstrap')
    expect(r.status).toBe(400)
    expect(r.body.error.message).toMatch(/GATEHOUSE_ADMIN_KEY|admin\.key/)
    const encoded = await gw.api('DELETE', '/v1/admin/keys/%62ootstrap')
    expect(encoded.status).toBe(400)
    expect((await gw.api('GET', '/v1/admin/keys')).status).toBe(200)
    const listed = (await gw.api('GET', '/v1/admin/keys')).body.items.find(
      (k: { id: string }) => k.id === 'bootstrap',
    )
    expect(listed.revoked_at).toBeNull()
  })
})

describe('tenants', () => {
  let gw: TestGateway
  let acmeAdmin: { id: string; key: string; tenant: string }
  let acmeMember: { id: string; key: string; tenant: string }
  let defaultMember: { id: string; key: string }
  let defaultAdmin: { id: string; key: string }

  beforeAll(async () => {
    gw = await startTestGateway()
    const t = await gw.api('POST', '/v1/admin/tenants', { name: 'acme', display_name: 'Acme Inc' })
    expect(t.status).toBe(201)
    const a = await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'admin', name: 'acme admin' })
    expect(a.status).toBe(201)
    acmeAdmin = a.body
    const m = await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'member' })
    expect(m.status).toBe(201)
    acmeMember = m.body
    defaultMember = (await gw.api('POST', '/v1/admin/keys', { role: 'member' })).body
    defaultAdmin = (await gw.api('POST', '/v1/admin/keys', { role: 'admin' })).body
    expect(defaultMember.key).toMatch(/^gk_/)
    expect(defaultAdmin.key).toMatch(/^gk_/)
  })
  afterAll(async () => gw?.close())

  it('the operator created tenant acme and an admin key in it', async () => {
    expect(acmeAdmin.tenant).toBe('acme')
    expect(acmeAdmin.key).toMatch(/^gk_/)
    const tenants = await gw.api('GET', '/v1/admin/tenants')
    expect(tenants.body.items.map((t: { name: string }) => t.name)).toEqual(
      expect.arrayContaining(['acme', 'default']),
    )
    // the acme admin sees only its own tenant
    const own = await gw.api('GET', '/v1/admin/tenants', undefined, acmeAdmin.key)
    expect(own.status).toBe(200)
    expect(own.body.items.map((t: { name: string }) => t.name)).toEqual(['acme'])
    // the operator sees acme's keys with ?tenant=acme
    const acmeKeys = await gw.api('GET', '/v1/admin/keys?tenant=acme')
    expect(acmeKeys.body.items.map((k: { id: string }) => k.id)).toEqual(
      expect.arrayContaining([acmeAdmin.id, acmeMember.id]),
    )
  })

  it('an acme admin sees only acme keys', async () => {
    const r = await gw.api('GET', '/v1/admin/keys', undefined, acmeAdmin.key)
    expect(r.status).toBe(200)
    const ids = r.body.items.map((k: { id: string }) => k.id)
    expect(ids).toEqual(expect.arrayContaining([acmeAdmin.id, acmeMember.id]))
    expect(ids).not.toContain('bootstrap')
    expect(ids).not.toContain(defaultMember.id)
    expect(ids).not.toContain(defaultAdmin.id)
    for (const k of r.body.items) expect(k.tenant).toBe('acme')
  })

  it('an acme admin gets 404 (not 403) for default-tenant keys and ?tenant=default', async () => {
    const revoke = await gw.api('DELETE', `/v1/admin/keys/${defaultMember.id}`, undefined, acmeAdmin.key)
    expect(revoke.status).toBe(404)
    expect(revoke.body.error.code).toBe('not_found')
    // same answer as an id that exists nowhere
    const nowhere = await gw.api('DELETE', '/v1/admin/keys/key_doesnotexist', undefined, acmeAdmin.key)
    expect(nowhere.status).toBe(404)
    expect(revoke.body.error.message.replace(defaultMember.id, 'X')).toBe(
      nowhere.body.error.message.replace('key_doesnotexist', 'X'),
    )
    // the default member key still works
    expect((await mcpPost(gw.url, defaultMember.key, INITIALIZE)).status).toBe(200)

    for (const [method, path, body] of [
      ['GET', '/v1/admin/keys?tenant=default', undefined],
      ['DELETE', `/v1/admin/keys/${defaultMember.id}?tenant=default`, undefined],
      ['GET', '/v1/admin/connectors?tenant=default', undefined],
      ['POST', '/v1/admin/keys', { tenant: 'default', role: 'admin' }],
      ['POST', '/v1/admin/keys', { tenant: 'newco', role: 'admin' }],
      [
        'POST',
        '/v1/admin/manifests?tenant=default',
        'apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: x }\nspec: { transport: stdio, command: node }\n',
      ],
    ] as const) {
      const r = await gw.api(method, path, body, acmeAdmin.key)
      expect(r.status, `${method} ${path} ${JSON.stringify(body ?? '')}`).toBe(404)
      expect(r.body.error.code).toBe('not_found')
    }
    // nothing was created in another tenant
    const tenants = await gw.api('GET', '/v1/admin/tenants')
    expect(tenants.body.items.map((t: { name: string }) => t.name)).not.toContain('newco')
    const defaultKeys = (await gw.api('GET', '/v1/admin/keys')).body.items
    expect(defaultKeys.find((k: { id: string }) => k.id === defaultMember.id).revoked_at).toBeNull()
    expect(defaultKeys.every((k: { tenant: string }) => k.tenant === 'default')).toBe(true)
  })

  it('tenant admins are not operators: no tenant creation, no other tenant via ?tenant=', async () => {
    for (const [k, other] of [
      [acmeAdmin.key, 'default'],
      [defaultAdmin.key, 'acme'],
    ] as const) {
      const t = await gw.api('POST', '/v1/admin/tenants', { name: 'rogue' }, k)
      expect(t.status).toBe(403)
      for (const path of [
        `/v1/admin/keys?tenant=${other}`,
        `/v1/audit?tenant=${other}`,
        `/v1/traces?tenant=${other}`,
        `/v1/admin/servers?tenant=${other}`,
      ]) {
        const r = await gw.api('GET', path, undefined, k)
        expect(r.status, path).toBe(404)
      }
      // ?tenant= naming their own tenant is fine
      const own = other === 'default' ? 'acme' : 'default'
      expect((await gw.api('GET', `/v1/admin/keys?tenant=${own}`, undefined, k)).status).toBe(200)
    }
    const tenants = await gw.api('GET', '/v1/admin/tenants')
    expect(tenants.body.items.map((t: { name: string }) => t.name)).not.toContain('rogue')
    // the default admin's key listing excludes acme keys
    const ids = (await gw.api('GET', '/v1/admin/keys', undefined, defaultAdmin.key)).body.items.map(
      (k: { id: string }) => k.id,
    )
    expect(ids).not.toContain(acmeAdmin.id)
    expect(ids).toContain(defaultMember.id)
    // while the operator reaches acme's audit log with ?tenant=
    expect((await gw.api('GET', '/v1/audit?tenant=acme')).status).toBe(200)
  })

  it('an acme admin cannot revoke the bootstrap key either', async () => {
    const r = await gw.api('DELETE', '/v1/admin/keys/bootstrap', undefined, acmeAdmin.key)
    expect([400, 404]).toContain(r.status)
    expect((await gw.api('GET', '/v1/admin/keys')).status).toBe(200)
  })

  it('an acme admin cannot apply a manifest for tenant default (400 naming the problem), and nothing is written', async () => {
    const r = await gw.api(
      'POST',
      '/v1/admin/manifests',
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: intruder, tenant: default }
spec: { transport: http, url: "http://127.0.0.1:1/mcp" }
`,
      acmeAdmin.key,
    )
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('invalid_manifest')
    expect(r.body.error.details).toEqual([
      expect.objectContaining({ path: 'metadata.tenant', message: expect.stringMatching(/tenant acme/) }),
    ])
    expect(r.body.error.message).toContain('metadata.tenant')
    const defaults = await gw.api('GET', '/v1/admin/connectors')
    expect(defaults.body.items.map((c: { name: string }) => c.name)).not.toContain('intruder')
    const own = await gw.api('GET', '/v1/admin/connectors', undefined, acmeAdmin.key)
    expect(own.body.items.map((c: { name: string }) => c.name)).not.toContain('intruder')
    // nor a Tenant document (operators only)
    const t = await gw.api(
      'POST',
      '/v1/admin/manifests',
      'apiVersion: gatehouse/v1\nkind: Tenant\nmetadata: { name: other }\n',
      acmeAdmin.key,
    )
    expect(t.status).toBe(400)
    expect(JSON.stringify(t.body.error.details)).toMatch(/operator/)
  })

  describe('MCP isolation', () => {
    beforeAll(async () => {
      // stdio connectors need an operator key (test/auth/operator-only-manifests.test.ts): the
      // operator applies acx in acme, which audits it in acme
      const r = await gw.api(
        'POST',
        '/v1/admin/manifests?tenant=acme',
        `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: acx }
spec:
  transport: stdio
  command: "${process.execPath}"
  args: ["${FIXTURE}", "--stdio"]
`,
      )
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.applied).toEqual([
        expect.objectContaining({ kind: 'Connector', tenant: 'acme', name: 'acx', action: 'created' }),
      ])
    })

    it('a connector applied in acme is listed for acme keys and absent for the default tenant', async () => {
      const adminView = await gw.api('GET', '/v1/admin/connectors', undefined, acmeAdmin.key)
      expect(adminView.body.items.map((c: { name: string }) => c.name)).toEqual(['acx'])
      expect(
        (await gw.api('GET', '/v1/admin/connectors')).body.items.map((c: { name: string }) => c.name),
      ).not.toContain('acx')

      // the upstream child may still be starting: a listing while it is down legitimately omits it
      const acmeTools = await eventually(async () => {
        const names = await toolNames(gw.url, acmeMember.key)
        return names.includes('acx__echo') ? names : undefined
      })
      expect(acmeTools).toContain('acx__echo')
      expect(await toolNames(gw.url, acmeAdmin.key)).toContain('acx__echo')
      const defaultTools = await toolNames(gw.url, defaultMember.key)
      expect(defaultTools.some((n) => n.startsWith('acx__'))).toBe(false)
      // the bootstrap operator key lives in tenant default: /mcp shows default's tools only
      expect((await toolNames(gw.url, ADMIN_KEY)).some((n) => n.startsWith('acx__'))).toBe(false)
    })

    it('the default tenant cannot call an acme tool', async () => {
      const sid = await openSession(gw.url, defaultMember.key)
      const r = await mcpPost(
        gw.url,
        defaultMember.key,
        {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'acx__echo', arguments: { text: 'hi' } },
        },
        sid,
      )
      expect(r.status).toBe(200)
      const failed = r.body.error !== undefined || r.body.result?.isError === true
      expect(failed).toBe(true)
      expect(JSON.stringify(r.body)).not.toMatch(/"text":"hi"/)
      // while acme can
      const asid = await openSession(gw.url, acmeMember.key)
      const ok = await eventually(async () => {
        const res = await mcpPost(
          gw.url,
          acmeMember.key,
          {
            jsonrpc: '2.0',
            id: 3,
            method: 'tools/call',
            params: { name: 'acx__echo', arguments: { text: 'hi' } },
          },
          asid,
        )
        return res.body?.result?.isError ? undefined : res
      })
      expect(ok!.body.result.content[0].text).toBe('hi')
    })

    it('an acme virtual server is not found from the default tenant', async () => {
      const r = await gw.api(
        'POST',
        '/v1/admin/manifests',
        'apiVersion: gatehouse/v1\nkind: Server\nmetadata: { name: acsrv }\nspec: { connectors: [acx] }\n',
        acmeAdmin.key,
      )
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      const init = (key: string) =>
        fetch(gw.url + '/mcp/acsrv', {
          method: 'POST',
          headers: {
            authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
          },
          body: JSON.stringify(INITIALIZE),
        }).then(async (res) => (await res.text(), res.status))
      expect(await init(acmeMember.key)).toBe(200)
      expect(await init(defaultMember.key)).toBe(404)
      expect(await init(ADMIN_KEY)).toBe(404)
      // a default-tenant Server may not select the acme connector
      const cross = await gw.api(
        'POST',
        '/v1/admin/manifests',
        'apiVersion: gatehouse/v1\nkind: Server\nmetadata: { name: steal }\nspec: { connectors: [acx] }\n',
      )
      expect(cross.status).toBe(400)
      expect(JSON.stringify(cross.body.error.details)).toMatch(
        /connector acx does not exist in tenant default/,
      )
    })

    it('audit events stay in their tenant', async () => {
      const acmeAuditor = (await gw.api('POST', '/v1/admin/keys', { tenant: 'acme', role: 'auditor' })).body
      let acmeItems: { tenant: string; action: string; target?: string }[] = []
      for (let i = 0; i < 100; i++) {
        const r = await gw.api('GET', '/v1/audit?limit=500', undefined, acmeAuditor.key)
        expect(r.status).toBe(200)
        acmeItems = r.body.items
        if (acmeItems.some((e) => e.action === 'connector.apply' && e.target === 'acx')) break
        await new Promise((res) => setTimeout(res, 50))
      }
      expect(acmeItems.some((e) => e.action === 'connector.apply' && e.target === 'acx')).toBe(true)
      expect(acmeItems.every((e) => e.tenant === 'acme')).toBe(true)
      const def = await gw.api('GET', '/v1/audit?limit=500')
      expect(def.body.items.length).toBeGreaterThan(0)
      expect(def.body.items.every((e: { tenant: string }) => e.tenant === 'default')).toBe(true)
      expect(
        def.body.items.some((e: { target?: string }) => e.target === 'acx' || e.target === acmeAdmin.id),
      ).toBe(false)
    })

    it('an acme key cannot use a 2025 session created by a default-tenant key (404)', async () => {
      const sid = await openSession(gw.url, defaultMember.key)
      const list = { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }
      // the owner can use it
      expect((await mcpPost(gw.url, defaultMember.key, list, sid)).status).toBe(200)
      // acme keys cannot, whatever their role
      for (const k of [acmeMember.key, acmeAdmin.key]) {
        const r = await mcpPost(gw.url, k, list, sid)
        expect(r.status).toBe(404)
        expect(JSON.stringify(r.body)).not.toContain('acx__')
      }
      // nor can another principal of the same tenant, nor the operator
      expect((await mcpPost(gw.url, defaultAdmin.key, list, sid)).status).toBe(404)
      expect((await mcpPost(gw.url, ADMIN_KEY, list, sid)).status).toBe(404)
      // the GET stream and DELETE are refused the same way
      for (const method of ['GET', 'DELETE']) {
        const res = await fetch(gw.url + '/mcp', {
          method,
          headers: {
            authorization: `Bearer ${acmeMember.key}`,
            'mcp-session-id': sid,
            accept: 'text/event-stream',
            'mcp-protocol-version': '2025-11-25',
          },
        })
        await res.body?.cancel()
        expect(res.status, method).toBe(404)
      }
      // and the session survived those attempts
      expect((await mcpPost(gw.url, defaultMember.key, list, sid)).status).toBe(200)
    })
  })
})
