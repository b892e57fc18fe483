import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { afterAll, describe, expect, it } from 'vitest'
import { startGateway, type GatewayHandle } from '../../src/gateway.js'
import { connectionAad, localKeyProvider, openEnvelope, sealEnvelope } from '../../src/vault/envelope.js'
import { masterKeyFrom, PREVIOUS_KEYS_FILE } from '../../src/vault/master-key.js'
import { seal } from '../../src/vault/seal.js'
import { ADMIN_KEY, eventually, textOf } from '../helpers/gateway.js'

const SECRET = 'tok_sealed_under_the_old_key_31337'
const dirs: string[] = []
const gateways: GatewayHandle[] = []
afterAll(async () => {
  await Promise.allSettled(gateways.map((g) => g.close()))
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }))
})

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'gh-gwkeys-'))
  dirs.push(d)
  return d
}

/** A stdio MCP server whose one tool reports SECRET_TOKEN from its environment. */
function envEcho(dir: string): string {
  const file = join(dir, 'env-echo.mjs')
  writeFileSync(
    file,
    `import { createInterface } from 'node:readline'
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.id === undefined || !m.method) return
  if (m.method === 'initialize') return send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'env-echo', version: '1' } } })
  if (m.method === 'tools/list') return send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'env', inputSchema: { type: 'object' } }] } })
  if (m.method === 'tools/call') return send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: process.env.SECRET_TOKEN ?? '' }] } })
  send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'method not found' } })
})
`,
  )
  return file
}

describe('gateway: several master keys', () => {
  it('reads manifest secrets and envelopes under a previous key, seals under the primary, exposes keyProvider', async () => {
    const [current, old] = [masterKeyFrom(randomBytes(32)), masterKeyFrom(randomBytes(32))]
    const dataDir = tmp()
    writeFileSync(join(dataDir, 'master.key'), current.key.toString('base64') + '\n', { mode: 0o600 })
    writeFileSync(join(dataDir, PREVIOUS_KEYS_FILE), old.key.toString('base64') + '\n', { mode: 0o600 })
    const manifest = join(dataDir, 'sx.yaml')
    writeFileSync(
      manifest,
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: sx }
spec:
  transport: stdio
  command: "${process.execPath}"
  args: ["${envEcho(dataDir)}"]
  env:
    SECRET_TOKEN: { sealed: "${seal(old, SECRET)}" }
`,
    )
    const gw = await startGateway({
      config: { port: 0, dataDir, adminKey: ADMIN_KEY, logLevel: 'silent', manifests: [manifest] },
    })
    gateways.push(gw)

    expect(gw.keyProvider.primaryId).toBe(current.id)
    expect(gw.keyProvider.has(old.id)).toBe(true)
    const aad = connectionAad({ tenant: 'default', userId: 'u', connector: 'sx', id: 'c1' })
    const underOld = await sealEnvelope(localKeyProvider([old]), 'tokens', aad)
    expect(await openEnvelope(gw.keyProvider, underOld, aad)).toBe('tokens')
    expect((await sealEnvelope(gw.keyProvider, 'tokens', aad)).keyId).toBe(current.id)

    const c = new Client({ name: 'keys-test', version: '1' })
    await c.connect(
      new StreamableHTTPClientTransport(new URL(gw.url + '/mcp'), {
        requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
      }),
    )
    try {
      const res = await eventually(async () => {
        const r = await c.callTool({ name: 'sx__env', arguments: {} })
        return r.isError ? undefined : r
      })
      expect(textOf(res)).toBe(SECRET)
    } finally {
      await c.close()
    }
  })

  it('takes a keyProvider from the options (a KMS) and hands it out unchanged', async () => {
    const kms = localKeyProvider([masterKeyFrom(randomBytes(32))])
    const gw = await startGateway({
      config: { port: 0, dataDir: tmp(), adminKey: ADMIN_KEY, logLevel: 'silent' },
      keyProvider: kms,
    })
    gateways.push(gw)
    expect(gw.keyProvider).toBe(kms)
  })
})
