#!/usr/bin/env node
// CPU per tools/call of a gateway build, by thread, read from /proc: for A/B comparisons of two
// builds on a noisy machine, where calls/s swing ±10 % from run to run but the CPU a call costs
// moves much less. The gateway runs pinned to CPU 0, the echo upstream and the load generator
// here on CPU 1, as in bench/tools-call.mjs.
//
//   node bench/cpu-per-call.mjs [--root DIR] [--era 2026|2025] [--calls N] [--rounds R] [--node-flags "..."]
//                               [--base DIR] [--base-node-flags "..."]
//
// --root is a checkout whose dist/ is built (default: this one). To compare two builds, give
// --base DIR: rounds then alternate base and this root, and the means are printed at the end.
// A checkout of another commit is one command away:
//   git worktree add /tmp/base <rev> && (cd /tmp/base && npm ci && npm run build)
// To compare Node or V8 flags on one build, give --base . and the base's flags with --base-node-flags.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { startEchoUpstream } from './lib/echo-upstream.mjs'
import { CLK_TCK, pinningPlan, pinSelf } from './lib/proc.mjs'

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: o } = parseArgs({
  options: {
    root: { type: 'string', default: HERE },
    base: { type: 'string' },
    era: { type: 'string', default: '2026' },
    calls: { type: 'string', default: '30000' },
    rounds: { type: 'string', default: '3' },
    'node-flags': { type: 'string', default: '' },
    'base-node-flags': { type: 'string' },
  },
})
if (o.era !== '2026' && o.era !== '2025') throw new Error(`--era must be 2026 or 2025, not ${o.era}`)
const CALLS = Number(o.calls)
const KEY = 'gk_cpu_per_call_0123456789abcdef'
const plan = pinningPlan(false)
if (plan.pin) pinSelf(1)

/** Per-thread utime+stime (clock ticks) and context switches of a process. */
function threads(pid) {
  const out = new Map()
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8')
    const csw = ['voluntary_ctxt_switches', 'nonvoluntary_ctxt_switches']
      .map((k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0))
      .reduce((a, b) => a + b)
    out.set(t, { name, user: Number(f[11]), sys: Number(f[12]), csw })
  }
  return out
}

async function measure(root, nodeFlags) {
  const up = await startEchoUpstream()
  const data = mkdtempSync(join(tmpdir(), 'gh-cpu-'))
  const args = [
    ...nodeFlags.split(' ').filter(Boolean),
    join(root, 'bin/gatehouse.js'),
    'start',
    '--port',
    '0',
    '--data',
    data,
  ]
  const gw = spawn(
    plan.pin ? 'taskset' : process.execPath,
    plan.pin ? ['-c', '0', process.execPath, ...args] : args,
    {
      env: { ...process.env, GATEHOUSE_ADMIN_KEY: KEY, GATEHOUSE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  try {
    const base = await new Promise((res, rej) => {
      let out = ''
      gw.once('exit', (code) => rej(new Error(`gateway exited (${code}) before listening`)))
      gw.stdout.on('data', (d) => {
        out += d
        const m = /listening on (\S+)/.exec(out)
        if (m) res(m[1])
      })
    })
    const auth = { authorization: `Bearer ${KEY}` }
    const apply = await fetch(`${base}/v1/admin/manifests`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/yaml' },
      body: `apiVersion: gatehouse/v1\nkind: Connector\nmetadata: { name: up }\nspec: { transport: http, url: "${up.url}", protocol: "2025-11-25" }\n`,
    })
    if (apply.status !== 200) throw new Error(`apply: ${apply.status} ${await apply.text()}`)
    const url = `${base}/mcp`
    const json = {
      ...auth,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    }
    let headers
    let params = { name: 'up__echo', arguments: { text: 'hello' } }
    if (o.era === '2026') {
      headers = {
        ...json,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'up__echo',
      }
      params = {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name: 'cpu-per-call', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      }
    } else {
      const init = await fetch(url, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'cpu-per-call', version: '1' },
          },
        }),
      })
      const sid = init.headers.get('mcp-session-id')
      await init.text()
      if (!sid) throw new Error('initialize gave no session id')
      headers = { ...json, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }
      const note = await fetch(url, {
        method: 'POST',
        headers,
        body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      })
      await note.text()
    }
    const load = {
      url,
      method: 'POST',
      connections: 64,
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params }),
    }
    await autocannon({ ...load, amount: Math.min(10_000, CALLS) }) // warm-up
    const before = threads(gw.pid)
    const r = await autocannon({ ...load, amount: CALLS })
    const after = threads(gw.pid)
    if (r.non2xx || r.errors) throw new Error(`${r.non2xx} non-2xx answers, ${r.errors} errors`)
    const tick = 1e6 / CLK_TCK // µs per clock tick
    let user = 0
    let sys = 0
    let csw = 0
    const per = []
    for (const [t, a] of after) {
      const b = before.get(t) ?? { user: 0, sys: 0, csw: 0 }
      user += a.user - b.user
      sys += a.sys - b.sys
      csw += a.csw - b.csw
      const us = ((a.user - b.user + a.sys - b.sys) * tick) / CALLS
      if (us > 0) per.push(`${t === String(gw.pid) ? 'main' : a.name}:${us.toFixed(1)}`)
    }
    return { user: (user * tick) / CALLS, sys: (sys * tick) / CALLS, csw: csw / CALLS, per }
  } finally {
    gw.kill('SIGTERM')
    await new Promise((res) => (gw.exitCode !== null ? res() : gw.once('exit', res)))
    await up.close()
    rmSync(data, { recursive: true, force: true })
  }
}

const builds = o.base
  ? [
      ['base', resolve(o.base)],
      ['this', resolve(o.root)],
    ]
  : [['this', resolve(o.root)]]
const totals = new Map(builds.map(([n]) => [n, []]))
console.log(`${o.era} era, ${CALLS} calls per round at 64 connections; ${plan.why}`)
for (let i = 0; i < Number(o.rounds); i++) {
  for (const [name, root] of builds) {
    const m = await measure(
      root,
      name === 'base' ? (o['base-node-flags'] ?? o['node-flags']) : o['node-flags'],
    )
    totals.get(name).push(m.user + m.sys)
    console.log(
      `${name.padEnd(4)} ${(m.user + m.sys).toFixed(1).padStart(6)} µs/call (user ${m.user.toFixed(1)}, sys ${m.sys.toFixed(1)}), ${m.csw.toFixed(2)} context switches/call; by thread ${m.per.join(' ')}`,
    )
  }
}
for (const [name, v] of totals) {
  const mean = v.reduce((a, b) => a + b, 0) / v.length
  console.log(
    `${name}: mean ${mean.toFixed(1)} µs/call over ${v.length} rounds (${v.map((x) => x.toFixed(1)).join(', ')})`,
  )
}
if (o.base) {
  const [bs, ts] = [...totals.values()]
  const [b, t] = [bs, ts].map((v) => v.reduce((a, c) => a + c, 0) / v.length)
  // Each round's pair ran back to back, so its ratio shares most of the machine's noise; the median
  // of those ratios moves less than the ratio of the means when one round is disturbed.
  const ratios = ts.map((x, i) => x / bs[i]).sort((x, y) => x - y)
  const mid = ratios.length >> 1
  const median = ratios.length % 2 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2
  console.log(
    `this / base = ${(t / b).toFixed(3)} (means); median of the rounds' ratios ${median.toFixed(3)}, ` +
      `range ${ratios[0].toFixed(3)}–${ratios.at(-1).toFixed(3)}; minimums ${(Math.min(...ts) / Math.min(...bs)).toFixed(3)}`,
  )
}
