// Drives 2026-07-28 tools/call through a gateway started with --cpu-prof, for profiling:
//   node bench/lib/profile-run.mjs [seconds] [profile-dir]
// Writes the gateway's .cpuprofile into profile-dir (default /tmp/gatehouse-prof) on exit.
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startEchoUpstream } from './echo-upstream.mjs'
import { pinningPlan, pinSelf } from './proc.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const seconds = Number(process.argv[2] ?? 8)
const dir = process.argv[3] ?? '/tmp/gatehouse-prof'
const KEY = 'gk_profile_key_0123456789abcdef'
// Pinned like bench/tools-call.mjs (gateway on CPU 0; upstream and load generator here, on CPU 1), so
// that time the gateway spends descheduled does not show up as samples in whatever it was running.
const plan = pinningPlan(process.argv.includes('--no-pin'))
if (plan.pin) pinSelf(1)
const up = await startEchoUpstream()
const gw = spawn(
  plan.pin ? 'taskset' : process.execPath,
  [
    ...(plan.pin ? ['-c', '0', process.execPath] : []),
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    join(ROOT, 'bin/gatehouse.js'),
    'start',
    '--port',
    '0',
    '--data',
    mkdtempSync(join(tmpdir(), 'gh-prof-')),
  ],
  {
    env: { ...process.env, GATEHOUSE_ADMIN_KEY: KEY, GATEHOUSE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
)
const url = await new Promise((res) => {
  let out = ''
  gw.stdout.on('data', (d) => {
    out += d
    const m = /listening on (\S+)/.exec(out)
    if (m) res(m[1])
  })
})
const apply = await fetch(`${url}/v1/admin/manifests`, {
  method: 'POST',
  headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/yaml' },
  body: `apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: up }\nspec: { transport: http, url: "${up.url}", protocol: "2025-11-25" }\n`,
})
if (apply.status !== 200) throw new Error(await apply.text())
const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'up__echo',
    arguments: { text: 'hello' },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'prof', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
})
const r = await autocannon({
  url: `${url}/mcp`,
  method: 'POST',
  connections: 64,
  duration: seconds,
  headers: {
    authorization: `Bearer ${KEY}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call',
    'mcp-name': 'up__echo',
  },
  body,
})
console.log(`calls/s ${Math.round(r.requests.average)} non2xx ${r.non2xx} errors ${r.errors}`)
gw.kill('SIGTERM')
await new Promise((res) => gw.once('exit', res))
await up.close()
