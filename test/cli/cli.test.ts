import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { loadMasterKey } from '../../src/vault/master-key.js'
import { unseal } from '../../src/vault/seal.js'
import { ADMIN_KEY, eventually, textOf } from '../helpers/gateway.js'
import { ROOT, runCli, spawnGateway, type GatewayProcess } from '../helpers/process.js'

const FIXTURE_MANIFEST = join(ROOT, 'test/fixtures/manifests/stdio-fixture.yaml')

/** No ambient gatehouse settings leak into the child processes. */
const CLEAN_ENV = {
  GATEHOUSE_ADMIN_KEY: '',
  GATEHOUSE_KEY: '',
  GATEHOUSE_MASTER_KEY: '',
  GATEHOUSE_DATA: '',
  GATEHOUSE_DATABASE_URL: '',
}

const tmpDirs: string[] = []
function tmp(prefix = 'gh-cli-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  tmpDirs.push(d)
  return d
}

const procs: GatewayProcess[] = []
async function gateway(
  args: string[] = [],
  env: Record<string, string> = {},
  dataDir?: string,
): Promise<GatewayProcess> {
  const p = await spawnGateway(args, { ...CLEAN_ENV, GATEHOUSE_ADMIN_KEY: ADMIN_KEY, ...env }, dataDir)
  procs.push(p)
  return p
}

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => p.stop()))
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true })
})

const cli = (args: string[], opts: { env?: Record<string, string>; input?: string } = {}) =>
  runCli(args, { ...opts, env: { ...CLEAN_ENV, ...opts.env } })

/** stderr is exactly one line, `gatehouse: …`. */
function expectOneErrorLine(stderr: string): string {
  expect(stderr.endsWith('\n'), JSON.stringify(stderr)).toBe(true)
  const lines = stderr.slice(0, -1).split('\n')
  expect(lines, JSON.stringify(stderr)).toHaveLength(1)
  expect(lines[0]).toMatch(/^gatehouse: \S/)
  return lines[0]!
}

async function get(url: string, path: string, key: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, { headers: { authorization: `Bearer ${key}` } })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : undefined }
}

async function mcpInitialize(url: string, key: string): Promise<number> {
  const res = await fetch(url + '/mcp', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'cli-test', version: '1' },
      },
    }),
  })
  await res.body?.cancel()
  return res.status
}

/** Calls a tool, retrying while the upstream child is still starting (such a call is an error result). */
async function callWhenReady(c: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const r = await eventually(async () => {
    const res = await c.callTool({ name, arguments: args })
    return res.isError ? undefined : res
  })
  return textOf(r)
}

async function mcpClient(url: string, key = ADMIN_KEY): Promise<Client> {
  const c = new Client({ name: 'cli-test', version: '1' })
  await c.connect(
    new StreamableHTTPClientTransport(new URL(url + '/mcp'), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  )
  return c
}

describe('gatehouse CLI: usage errors', () => {
  it('`gatehouse help` (and no arguments, and --help) prints usage and exits 0', async () => {
    for (const args of [['help'], [], ['--help'], ['-h']]) {
      const r = await cli(args)
      expect(r.code, args.join(' ')).toBe(0)
      expect(r.stdout).toMatch(/^gatehouse/)
      for (const cmd of [
        'gatehouse start',
        'gatehouse apply',
        'gatehouse seal',
        'gatehouse keys create',
        'gatehouse keys list',
        'gatehouse keys revoke',
      ]) {
        expect(r.stdout).toContain(cmd)
      }
      expect(r.stderr).toBe('')
    }
  })

  it('an unknown command exits non-zero with one line naming it', async () => {
    const r = await cli(['frobnicate', '--x', '1'])
    expect(r.code).not.toBe(0)
    expect(r.code).toBe(2)
    const line = expectOneErrorLine(r.stderr)
    expect(line).toContain('unknown command "frobnicate"')
    expect(line).toContain('gatehouse help')
    expect(r.stdout).toBe('')
  })

  it('an unknown flag exits non-zero with one line naming the flag and the command', async () => {
    for (const args of [
      ['start', '--bogus', '1'],
      ['apply', '-f', FIXTURE_MANIFEST, '--bogus', '1', '--key', ADMIN_KEY],
      ['seal', '--bogus=1', '--value', 'v'],
      ['keys', 'create', '--role', 'member', '--bogus', '1', '--key', ADMIN_KEY],
      ['keys', 'list', '--bogus', '1', '--key', ADMIN_KEY],
    ]) {
      const r = await cli(args)
      expect(r.code, args.join(' ')).toBe(2)
      const line = expectOneErrorLine(r.stderr)
      expect(line).toContain('unknown option --bogus')
      expect(line).toContain(`gatehouse ${args[0] === 'keys' ? `keys ${args[1]}` : args[0]}`)
      expect(r.stdout).toBe('')
    }
  })

  it('an unknown flag on `keys` is reported as such even when no API key is configured', async () => {
    // The flag is the user's first mistake; complaining about a missing key instead sends them the wrong way.
    const r = await cli(['keys', 'list', '--bogus', '1'])
    expect(r.code).toBe(2)
    expect(expectOneErrorLine(r.stderr)).toContain('unknown option --bogus')
  })

  it('an unknown flag given without a value is reported as unknown, not as missing its value', async () => {
    const r = await cli(['start', '--verbose'])
    expect(r.code).toBe(2)
    expect(expectOneErrorLine(r.stderr)).toContain('unknown option --verbose')
  })

  it('`start --port 99999` fails with one clear line and starts nothing', async () => {
    const dataDir = tmp()
    const r = await cli(['start', '--port', '99999', '--data', dataDir], {
      env: { GATEHOUSE_ADMIN_KEY: ADMIN_KEY },
    })
    expect(r.code).toBe(2)
    const line = expectOneErrorLine(r.stderr)
    expect(line).toContain('--port')
    expect(line).toContain('99999')
    expect(line).toMatch(/0.65535/)
    expect(r.stdout).not.toContain('listening')
    for (const bad of ['abc', '-1', '80.5']) {
      const b = await cli(['start', '--port', bad, '--data', dataDir], {
        env: { GATEHOUSE_ADMIN_KEY: ADMIN_KEY },
      })
      expect(b.code, bad).toBe(2)
      expect(expectOneErrorLine(b.stderr)).toContain('--port')
    }
  })

  it('`start` on a port in use, with a missing config file, or with a short admin key: one line each, exit non-zero', async () => {
    const { createServer } = await import('node:net')
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()))
    const port = (blocker.address() as { port: number }).port
    try {
      const inUse = await cli(['start', '--port', String(port), '--data', tmp()], {
        env: { GATEHOUSE_ADMIN_KEY: ADMIN_KEY, GATEHOUSE_LOG_LEVEL: 'warn' },
      })
      expect(inUse.code).not.toBe(0)
      const line = expectOneErrorLine(inUse.stderr)
      expect(line).toContain(`127.0.0.1:${port}`)
      expect(line).toContain('EADDRINUSE')
      expect(inUse.stdout).not.toContain('listening')
    } finally {
      blocker.close()
    }

    const noConfig = await cli(['start', '--config', '/nonexistent/gatehouse.yaml', '--data', tmp()], {
      env: { GATEHOUSE_ADMIN_KEY: ADMIN_KEY },
    })
    expect(noConfig.code).toBe(2)
    expect(expectOneErrorLine(noConfig.stderr)).toContain('/nonexistent/gatehouse.yaml')

    const shortKey = await cli(['start', '--port', '0', '--data', tmp()], {
      env: { GATEHOUSE_ADMIN_KEY: 'tooShort123' },
    })
    expect(shortKey.code).toBe(2)
    const keyLine = expectOneErrorLine(shortKey.stderr)
    expect(keyLine).toContain('GATEHOUSE_ADMIN_KEY')
    expect(keyLine).toMatch(/16/)
    expect(keyLine).not.toContain('tooShort123')
  })

  it('a flag that needs a value and has none is one clear line', async () => {
    const r = await cli(['apply', '-f'])
    expect(r.code).toBe(2)
    expect(expectOneErrorLine(r.stderr)).toContain('--file needs a value')
  })

  it('talking to no gateway is one line that says so', async () => {
    const r = await cli(['keys', 'list', '--url', 'http://127.0.0.1:1', '--key', ADMIN_KEY])
    expect(r.code).not.toBe(0)
    const line = expectOneErrorLine(r.stderr)
    expect(line).toContain('cannot reach http://127.0.0.1:1')
    expect(line).not.toContain(ADMIN_KEY)
  })
})

describe('gatehouse start: the bootstrap admin key', () => {
  it('generates DATA/admin.key (0600), prints it once before the listening line, and reuses it on restart', async () => {
    const dataDir = tmp()
    const first = await gateway([], { GATEHOUSE_ADMIN_KEY: '' }, dataDir)
    const lines = first.stdout().split('\n').filter(Boolean)
    const keyFile = join(dataDir, 'admin.key')
    const genIdx = lines.findIndex((l) => l.includes('generated admin key'))
    const listenIdx = lines.findIndex((l) => l.startsWith('gatehouse listening on '))
    expect(genIdx).toBeGreaterThanOrEqual(0)
    expect(listenIdx).toBeGreaterThan(genIdx)
    const m = /generated admin key \(shown once, also in (.+)\): (gk_[A-Za-z0-9_-]+)$/.exec(lines[genIdx]!)
    expect(m, lines[genIdx]).not.toBeNull()
    expect(m![1]).toBe(keyFile)
    const key = m![2]!
    // shown exactly once, and never in the logs
    expect(first.stdout().split(key).length - 1).toBe(1)
    expect(first.stderr()).not.toContain(key)
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(key)
    // it authenticates as an admin
    expect((await get(first.url, '/v1/admin/keys', key)).status).toBe(200)
    expect((await get(first.url, '/v1/admin/keys', ADMIN_KEY)).status).toBe(401)
    expect(await first.stop()).toBe(0)

    const second = await gateway([], { GATEHOUSE_ADMIN_KEY: '' }, dataDir)
    expect(second.stdout()).not.toContain('generated admin key')
    expect(second.stdout()).not.toContain(key)
    expect(second.stdout()).toMatch(/gatehouse listening on http:\/\//)
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(key)
    const keys = await get(second.url, '/v1/admin/keys', key)
    expect(keys.status).toBe(200)
    expect(keys.body.items.filter((k: { id: string }) => k.id === 'bootstrap')).toHaveLength(1)
    expect(await second.stop()).toBe(0)

    // setting GATEHOUSE_ADMIN_KEY later replaces the bootstrap key: the generated one stops working
    const third = await gateway([], { GATEHOUSE_ADMIN_KEY: ADMIN_KEY }, dataDir)
    expect(third.stdout()).not.toContain('generated admin key')
    expect((await get(third.url, '/v1/admin/keys', ADMIN_KEY)).status).toBe(200)
    expect((await get(third.url, '/v1/admin/keys', key)).status).toBe(401)
    expect(await third.stop()).toBe(0)
  })

  it('GATEHOUSE_ADMIN_KEY wins over the key file and no file is generated', async () => {
    const dataDir = tmp()
    const p = await gateway([], {}, dataDir)
    expect(p.stdout()).not.toContain('generated admin key')
    expect(() => statSync(join(dataDir, 'admin.key'))).toThrow()
    expect((await get(p.url, '/v1/admin/keys', ADMIN_KEY)).status).toBe(200)
    expect(await p.stop()).toBe(0)
  })
})

describe('gatehouse seal', () => {
  const SECRET = 'tok_CLI_s3cr3t_value_9876'
  let dataDir: string
  let proc: GatewayProcess
  let sealed: string
  let manifestFile: string

  beforeAll(async () => {
    dataDir = tmp()
    const r = await cli(['seal', '--data', dataDir], { input: SECRET + '\n' })
    expect(r.code, r.stderr).toBe(0)
    const m = /^\{ sealed: "(gh1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+)" \}\n$/.exec(r.stdout)
    expect(m, r.stdout).not.toBeNull()
    sealed = m![1]!
    expect(r.stdout).not.toContain(SECRET)
    expect(r.stderr).toBe('')

    // A tiny stdio MCP server whose one tool reports what its environment holds.
    const work = tmp('gh-cli-seal-')
    const server = join(work, 'env-echo.mjs')
    writeFileSync(
      server,
      `import { createInterface } from 'node:readline'
const send = (m) => process.stdout.write(JSON.stringify(m) + '\\n')
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line)
  if (m.id === undefined || !m.method) return
  if (m.method === 'initialize') return send({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'env-echo', version: '1' } } })
  if (m.method === 'tools/list') return send({ jsonrpc: '2.0', id: m.id, result: { tools: [{ name: 'env', description: 'environment', inputSchema: { type: 'object', properties: {} } }] } })
  if (m.method === 'tools/call') return send({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: JSON.stringify({ secret: process.env.SECRET_TOKEN ?? null, plain: process.env.PLAIN ?? null, names: Object.keys(process.env) }) }] } })
  send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'method not found' } })
})
`,
    )
    manifestFile = join(work, 'sealed.yaml')
    writeFileSync(
      manifestFile,
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: sx }
spec:
  transport: stdio
  command: "${process.execPath}"
  args: ["${server}"]
  env:
    SECRET_TOKEN: { sealed: "${sealed}" }
    PLAIN: visible
`,
    )
    proc = await gateway([], {}, dataDir)
  })

  it('creates DATA/master.key (0600) and the sealed value opens with it', () => {
    const file = join(dataDir, 'master.key')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const k = loadMasterKey(dataDir, {})
    expect(sealed.split('.')[1]).toBe(k.id)
    // exactly one trailing newline from stdin was dropped
    expect(unseal(k, sealed)).toBe(SECRET)
  })

  it('--value works too and every seal differs', async () => {
    const a = await cli(['seal', '--data', dataDir, '--value', SECRET])
    const b = await cli(['seal', '--data', dataDir], { input: SECRET })
    expect(a.code).toBe(0)
    expect(b.code).toBe(0)
    expect(a.stdout).not.toBe(b.stdout)
    expect(a.stdout).not.toBe(`{ sealed: "${sealed}" }\n`)
    const k = loadMasterKey(dataDir, {})
    expect(unseal(k, /"(gh1\.[^"]+)"/.exec(a.stdout)![1]!)).toBe(SECRET)
    expect(unseal(k, /"(gh1\.[^"]+)"/.exec(b.stdout)![1]!)).toBe(SECRET)
  })

  it('an empty value is refused with one line', async () => {
    const r = await cli(['seal', '--data', dataDir], { input: '' })
    expect(r.code).toBe(2)
    expect(expectOneErrorLine(r.stderr)).toContain('empty')
    expect(r.stdout).toBe('')
  })

  it('refuses a master key file readable by others', async () => {
    const d = tmp()
    expect((await cli(['seal', '--data', d, '--value', 'x'])).code).toBe(0)
    const { chmodSync } = await import('node:fs')
    chmodSync(join(d, 'master.key'), 0o644)
    const r = await cli(['seal', '--data', d, '--value', 'x'])
    expect(r.code).not.toBe(0)
    expect(expectOneErrorLine(r.stderr)).toContain('chmod 600')
    expect(r.stdout).toBe('')
  })

  it('a manifest using the sealed value applies; the API shows only the reference; the child gets the plaintext', async () => {
    const r = await cli(['apply', '-f', manifestFile, '--url', proc.url, '--key', ADMIN_KEY])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('connector/sx (tenant default) created\n')

    const list = await get(proc.url, '/v1/admin/connectors', ADMIN_KEY)
    expect(list.status).toBe(200)
    const sx = list.body.items.find((c: { name: string }) => c.name === 'sx')
    expect(sx.spec.env.SECRET_TOKEN).toEqual({ sealed })
    expect(sx.spec.env.PLAIN).toBe('visible')
    expect(JSON.stringify(list.body)).not.toContain(SECRET)
    const one = await get(proc.url, '/v1/admin/connectors/sx', ADMIN_KEY)
    expect(one.body.spec.env.SECRET_TOKEN).toEqual({ sealed })
    expect(JSON.stringify(one.body)).not.toContain(SECRET)

    const c = await mcpClient(proc.url)
    try {
      const seen = JSON.parse(await callWhenReady(c, 'sx__env'))
      expect(seen.secret).toBe(SECRET)
      expect(seen.plain).toBe('visible')
      // the gateway's own secrets do not reach the child
      expect(seen.names).not.toContain('GATEHOUSE_ADMIN_KEY')
    } finally {
      await c.close()
    }
    // nor does the plaintext reach the gateway's output or its database
    expect(proc.stdout()).not.toContain(SECRET)
    expect(proc.stderr()).not.toContain(SECRET)
    const dbBytes = ['gatehouse.db', 'gatehouse.db-wal']
      .map((f) => {
        try {
          return readFileSync(join(dataDir, f))
        } catch {
          return Buffer.alloc(0)
        }
      })
      .reduce((a, b) => Buffer.concat([a, b]))
    expect(dbBytes.includes(Buffer.from(sealed))).toBe(true)
    expect(dbBytes.includes(Buffer.from(SECRET))).toBe(false)
  })

  it('a literal where only a secret reference is allowed is refused', async () => {
    const file = join(tmp(), 'literal.yaml')
    writeFileSync(
      file,
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: lit }
spec: { transport: http, url: "http://127.0.0.1:9/mcp", auth: { type: static, token: "${SECRET}" } }
`,
    )
    const r = await cli(['apply', '-f', file, '--url', proc.url, '--key', ADMIN_KEY])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('spec.auth.token')
    expect(r.stderr).toMatch(/never literal/)
  })
})

describe('gatehouse apply and keys against a running gateway', () => {
  let proc: GatewayProcess
  const target = () => ['--url', proc.url, '--key', ADMIN_KEY]

  beforeAll(async () => {
    proc = await gateway()
  })

  it('`apply -f stdio-fixture.yaml` creates the connector, then reports it unchanged', async () => {
    const r = await cli(['apply', '-f', FIXTURE_MANIFEST, ...target()])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('connector/fx (tenant default) created\n')
    expect(r.stderr).toBe('')

    const again = await cli(['apply', '-f', FIXTURE_MANIFEST, ...target()])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toBe('connector/fx (tenant default) unchanged\n')

    // the relative args resolved against the manifest file: the connector works
    const c = await mcpClient(proc.url)
    try {
      expect(await callWhenReady(c, 'fx__echo', { text: 'via cli' })).toBe('via cli')
    } finally {
      await c.close()
    }
    const fx = await get(proc.url, '/v1/admin/connectors/fx', ADMIN_KEY)
    expect(fx.body.generation).toBe(1)
    expect(resolve(fx.body.spec.cwd)).toBe(join(ROOT, 'test/fixtures/manifests'))
  })

  it('the same manifest loaded by `start --manifests` and then sent by `gatehouse apply` is unchanged', async () => {
    const p = await gateway(['--manifests', FIXTURE_MANIFEST])
    try {
      const before = await get(p.url, '/v1/admin/connectors/fx', ADMIN_KEY)
      expect(before.status).toBe(200)
      expect(before.body.generation).toBe(1)
      const r = await cli(['apply', '-f', FIXTURE_MANIFEST, '--url', p.url, '--key', ADMIN_KEY])
      expect(r.code, r.stderr).toBe(0)
      // Both paths resolve the stdio cwd against the manifest's directory; they must agree,
      // or every CLI re-apply of a start-up manifest bumps the generation and restarts the child.
      expect(r.stdout).toBe('connector/fx (tenant default) unchanged\n')
      const after = await get(p.url, '/v1/admin/connectors/fx', ADMIN_KEY)
      expect(after.body.spec.cwd).toBe(before.body.spec.cwd)
      expect(after.body.generation).toBe(1)
    } finally {
      expect(await p.stop()).toBe(0)
    }
  })

  it('GATEHOUSE_URL and GATEHOUSE_KEY stand in for --url and --key', async () => {
    const r = await cli(['apply', '-f', FIXTURE_MANIFEST], {
      env: { GATEHOUSE_URL: proc.url, GATEHOUSE_KEY: ADMIN_KEY },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^connector\/fx \(tenant default\) (created|unchanged)\n$/)
  })

  it('a wrong key is one line naming the 401', async () => {
    const r = await cli([
      'apply',
      '-f',
      FIXTURE_MANIFEST,
      '--url',
      proc.url,
      '--key',
      'gk_wrong_key_000000000000000000',
    ])
    expect(r.code).not.toBe(0)
    const line = expectOneErrorLine(r.stderr)
    expect(line).toContain('401')
    expect(line).not.toContain('gk_wrong_key')
  })

  it('an invalid manifest exits non-zero, prints every problem by path, and applies nothing', async () => {
    const file = join(tmp(), 'invalid.yaml')
    writeFileSync(
      file,
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fine }
spec: { transport: stdio, command: node }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: nocommand }
spec: { transport: stdio }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: badurl }
spec: { transport: http, url: "ftp://example.com/mcp" }
---
apiVersion: gatehouse/v1
kind: Gizmo
metadata: { name: g }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: "-bad-name-" }
spec: { transport: stdio, command: node }
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: srv }
spec: { connectors: [fine, ghost] }
`,
    )
    const r = await cli(['apply', '-f', file, ...target()])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^gatehouse: /)
    expect(r.stderr).toContain('(400)')
    expect(r.stderr).toMatch(/5 problems/)
    // every problem is named by its document and path (however the CLI lays the lines out)
    const expected: [number, string, RegExp][] = [
      [2, 'spec.command', /./],
      [3, 'spec.url', /http/],
      [4, 'kind', /unknown kind Gizmo/],
      [5, 'metadata.name', /A-Za-z0-9/],
      [6, 'spec.connectors[1]', /connector ghost does not exist/],
    ]
    for (const [doc, path, msg] of expected) {
      const at = r.stderr.indexOf(`#${doc} ${path}: `)
      expect(at, `#${doc} ${path} in\n${r.stderr}`).toBeGreaterThanOrEqual(0)
      const problem = r.stderr.slice(at).split(/;\s|\n/)[0]!
      expect(problem).toMatch(msg)
    }
    // the valid document is not reported as a problem
    expect(r.stderr).not.toMatch(/#1 /)
    // all or nothing: the valid document was not applied either
    const list = await get(proc.url, '/v1/admin/connectors', ADMIN_KEY)
    expect(list.body.items.map((c: { name: string }) => c.name)).not.toContain('fine')
  })

  it('schema problems name the manifest file, as docs/manifests.md shows (`bad.yaml#2 spec.url: …`)', async () => {
    const dir = tmp()
    writeFileSync(
      join(dir, 'good.yaml'),
      'apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: okcon }\nspec: { transport: stdio, command: node }\n',
    )
    writeFileSync(
      join(dir, 'bad.yaml'),
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fine2 }
spec: { transport: stdio, command: node }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: badurl2 }
spec: { transport: http, url: "not a url" }
`,
    )
    const r = await cli(['apply', '-f', join(dir, 'good.yaml'), '-f', join(dir, 'bad.yaml'), ...target()])
    expect(r.code).toBe(2)
    // the second document of bad.yaml, not the third document of the request
    expect(r.stderr).toContain('bad.yaml#2 spec.url:')
    expect(r.stderr).not.toContain('request#3')
  })

  it('a YAML syntax error is reported with the file name and exits non-zero', async () => {
    const file = join(tmp(), 'broken.yaml')
    writeFileSync(file, 'apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: x\n')
    const r = await cli(['apply', '-f', file, ...target()])
    expect(r.code).not.toBe(0)
    const line = expectOneErrorLine(r.stderr)
    expect(line).toContain(file)
    expect(line).toMatch(/syntax/)
    expect(r.stdout).toBe('')
  })

  it('a missing manifest path is one line naming it', async () => {
    const r = await cli(['apply', '-f', '/nonexistent/manifests.yaml', ...target()])
    expect(r.code).toBe(2)
    expect(expectOneErrorLine(r.stderr)).toContain('/nonexistent/manifests.yaml')
  })

  it('`apply --dry-run` validates and changes nothing', async () => {
    const dir = tmp()
    const file = join(dir, 'dry.yaml')
    writeFileSync(
      file,
      `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: drycon }
spec: { transport: stdio, command: node, args: [x.mjs] }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fx }
spec: { transport: stdio, command: node, args: [changed.mjs] }
`,
    )
    const before = await get(proc.url, '/v1/admin/connectors/fx', ADMIN_KEY)
    expect(before.status).toBe(200)
    const auditBefore = await get(proc.url, '/v1/audit', ADMIN_KEY)

    const r = await cli(['apply', '--dry-run', '-f', file, ...target()])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('connector/drycon (tenant default) valid\nconnector/fx (tenant default) valid\n')

    const names = (await get(proc.url, '/v1/admin/connectors', ADMIN_KEY)).body.items.map(
      (c: { name: string }) => c.name,
    )
    expect(names).not.toContain('drycon')
    const after = await get(proc.url, '/v1/admin/connectors/fx', ADMIN_KEY)
    expect(after.body.spec).toEqual(before.body.spec)
    expect(after.body.generation).toBe(before.body.generation)
    await new Promise((r) => setTimeout(r, 300))
    const auditAfter = await get(proc.url, '/v1/audit', ADMIN_KEY)
    expect(
      auditAfter.body.items.filter((e: { action: string }) => e.action === 'connector.apply').length,
    ).toBe(auditBefore.body.items.filter((e: { action: string }) => e.action === 'connector.apply').length)

    // an invalid batch fails a dry run too
    writeFileSync(
      join(dir, 'dry.yaml'),
      'apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: drybad }\nspec: { transport: stdio }\n',
    )
    const bad = await cli(['apply', '-f', file, '--dry-run', ...target()])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('spec.command')
  })

  it('`keys create|list|revoke`: a gk_ key shown once, listed, revoked, then refused', async () => {
    const created = await cli(['keys', 'create', '--role', 'member', '--name', 'cli-made', ...target()])
    expect(created.code, created.stderr).toBe(0)
    const id = /^id: (key_\S+)$/m.exec(created.stdout)?.[1]
    const key = /^key: (gk_[A-Za-z0-9_-]+)$/m.exec(created.stdout)?.[1]
    expect(id, created.stdout).toBeTruthy()
    expect(key, created.stdout).toBeTruthy()
    expect(created.stdout).toMatch(/^tenant: default$/m)
    expect(created.stdout).toMatch(/shown only once/)
    expect(created.stdout.split(key!).length - 1).toBe(1)

    // the member key works on /mcp and is refused admin routes
    expect(await mcpInitialize(proc.url, key!)).toBe(200)
    expect((await get(proc.url, '/v1/admin/keys', key!)).status).toBe(403)

    const list = await cli(['keys', 'list', ...target()])
    expect(list.code, list.stderr).toBe(0)
    const row = list.stdout.split('\n').find((l) => l.startsWith(id! + '\t'))
    expect(row).toBe(`${id}\tmember\tcli-made`)
    expect(list.stdout).toMatch(/^bootstrap\tadmin\t/m)
    expect(list.stdout).not.toContain('gk_')

    const revoked = await cli(['keys', 'revoke', id!, ...target()])
    expect(revoked.code, revoked.stderr).toBe(0)
    expect(revoked.stdout).toBe(`revoked ${id}\n`)

    expect(await mcpInitialize(proc.url, key!)).toBe(401)
    expect((await get(proc.url, '/v1/admin/keys', key!)).status).toBe(401)
    const listAfter = await cli(['keys', 'list', ...target()])
    expect(listAfter.stdout.split('\n').find((l) => l.startsWith(id! + '\t'))).toBe(
      `${id}\tmember\tcli-made\trevoked`,
    )

    // revoking again, an unknown id, and the bootstrap key all fail with one line
    for (const [victim, status] of [
      [id!, '404'],
      ['key_nope', '404'],
      ['bootstrap', '400'],
    ] as const) {
      const r = await cli(['keys', 'revoke', victim, ...target()])
      expect(r.code, victim).not.toBe(0)
      expect(expectOneErrorLine(r.stderr)).toContain(`(${status})`)
    }
    expect((await get(proc.url, '/v1/admin/keys', ADMIN_KEY)).status).toBe(200)
  })

  it('`keys create` in another tenant and with an expiry', async () => {
    const r = await cli([
      'keys',
      'create',
      '--role',
      'admin',
      '--tenant',
      'clico',
      '--expires-in',
      '3600',
      ...target(),
    ])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^tenant: clico$/m)
    const key = /^key: (gk_\S+)$/m.exec(r.stdout)![1]!
    const mine = await get(proc.url, '/v1/admin/keys', key)
    expect(mine.status).toBe(200)
    expect(mine.body.items.every((k: { tenant: string }) => k.tenant === 'clico')).toBe(true)
    const list = await cli(['keys', 'list', '--tenant', 'clico', ...target()])
    expect(list.stdout).toMatch(/\tadmin\tadmin key\texpires \d{4}-/)
    expect(list.stdout).not.toMatch(/^bootstrap/m)
  })

  it('`keys` usage errors are one line', async () => {
    for (const [args, text] of [
      [['keys', 'create', ...target()], '--role'],
      [['keys', 'revoke', ...target()], 'key id'],
      [['keys', 'rotate', ...target()], 'usage'],
    ] as const) {
      const r = await cli([...args])
      expect(r.code, args.join(' ')).toBe(2)
      expect(expectOneErrorLine(r.stderr)).toContain(text)
    }
  })

  it('a request the API refuses (bad role) is reported once, naming the field', async () => {
    const r = await cli(['keys', 'create', '--role', 'superuser', ...target()])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('(400)')
    expect(r.stderr).toMatch(/role/)
    // the problem is stated once, not repeated on a second line
    expect(r.stderr.split('\n').filter((l) => /Invalid option/.test(l))).toHaveLength(1)
    expect(expectOneErrorLine(r.stderr)).toMatch(/role: Invalid option/)
  })
})
