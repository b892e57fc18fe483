#!/usr/bin/env node
// tools/call throughput and latency through the gateway, against a same-run direct baseline.
//
//   node bench/tools-call.mjs [--duration 10] [--connections 1,64] [--warmup 2] [--upstream fast|sdk]
//                             [--upstream-protocol 2025-11-25|2026-07-28|auto]
//                             [--cases direct,relay,legacy,modern] [--no-pin] [--out FILE]
//
// One run starts an echo MCP upstream and the built gateway (dist/, so `npm run build` first) as
// child processes, then drives tools/call with autocannon. --upstream fast (default): a minimal
// near-raw node:http server (bench/lib/echo-upstream.mjs); --upstream sdk: a typical server built
// with the official v2 SDK (bench/lib/sdk-upstream.mjs). The gateway's connector speaks
// --upstream-protocol to it (default: 2026-07-28 for sdk, 2025-11-25 for fast). Cases:
//   direct  straight to the upstream (the baseline: what a client gets without the gateway;
//           fast: a sessionless call without _meta; sdk: a stateless 2026-07-28 call)
//   relay   through a bare node:http + undici relay (bench/lib/relay.mjs) on the gateway's CPU:
//           no auth, audit, tracing or MCP handling; the yardstick for what any Node.js
//           gateway could reach on this machine (sends the direct case's request)
//   legacy  through the gateway's /mcp in the 2025-11-25 era: one initialized session per
//           connection, every call on that session
//   modern  through the gateway's /mcp in the 2026-07-28 era: stateless requests with the
//           per-request _meta envelope and the mcp-method / mcp-name headers
// Every response body is checked for the echoed text (a mismatch counts as an error), and each
// case starts with a sample call whose JSON-RPC result is checked field by field.
// See bench/README.md for how to read the numbers.

import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { createHistogram } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import {
  machineCpuMicros,
  pinningPlan,
  pinSelf,
  processCpuMicros,
  processMemory,
  stopChild,
  waitForLine,
} from './lib/proc.mjs'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(BENCH_DIR, '..')
const LEGACY = '2025-11-25'
const MODERN = '2026-07-28'
const ECHO_TEXT = `bench-echo-${randomBytes(6).toString('hex')}`
/** What every successful response body must contain (JSON-encoded text content). */
const NEEDLE = `"text":"${ECHO_TEXT}"`
const CASE_LABEL = {
  direct: 'direct (no gateway)',
  relay: 'bare relay (yardstick)',
  legacy: `gateway ${LEGACY} session`,
  modern: `gateway ${MODERN} stateless`,
}
/** Cases whose calls go through the gateway (and its pipeline counters). */
const throughGateway = (kind) => kind === 'legacy' || kind === 'modern'

/**
 * The upstream kinds. `direct` says how the direct case calls the upstream: `modern` sends the
 * 2026-07-28 request (envelope in params._meta, mcp-* headers), otherwise a sessionless call
 * without _meta.
 */
const UPSTREAMS = {
  fast: {
    module: 'lib/echo-upstream.mjs',
    ready: /echo upstream listening on (\S+)/,
    description: 'minimal node:http echo server (bench/lib/echo-upstream.mjs)',
    defaultProtocol: LEGACY,
    directModern: false,
  },
  sdk: {
    module: 'lib/sdk-upstream.mjs',
    ready: /sdk upstream listening on (\S+)/,
    description:
      'official TypeScript SDK v2: McpServer + createMcpHandler + toNodeHandler (bench/lib/sdk-upstream.mjs)',
    defaultProtocol: MODERN,
    directModern: true,
  },
}

// ---------------------------------------------------------------------------------------------
// Options

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '1,64' },
    warmup: { type: 'string', default: '2' },
    upstream: { type: 'string', default: 'fast' },
    'upstream-protocol': { type: 'string' },
    cases: { type: 'string', default: 'direct,relay,legacy,modern' },
    'no-pin': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
})
if (argv.help) {
  process.stdout.write(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(1, 22)
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n') + '\n',
  )
  process.exit(0)
}
const DURATION = positive(argv.duration, '--duration')
const WARMUP = Number(argv.warmup)
if (!Number.isFinite(WARMUP) || WARMUP < 0) fail('--warmup must be a number ≥ 0')
const CONNECTIONS = argv.connections.split(',').map((c) => positive(c, '--connections'))
const UPSTREAM_KIND = argv.upstream
if (!(UPSTREAM_KIND in UPSTREAMS)) fail(`--upstream must be fast or sdk, got ${UPSTREAM_KIND}`)
const UPSTREAM = UPSTREAMS[UPSTREAM_KIND]
const UPSTREAM_PROTOCOL = argv['upstream-protocol'] ?? UPSTREAM.defaultProtocol
if (![LEGACY, MODERN, 'auto'].includes(UPSTREAM_PROTOCOL))
  fail(`--upstream-protocol must be ${LEGACY}, ${MODERN} or auto`)
const CASES = argv.cases.split(',').map((c) => c.trim())
for (const c of CASES) if (!(c in CASE_LABEL)) fail(`unknown case ${c} (direct, relay, legacy, modern)`)

function positive(v, name) {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) fail(`${name} must be a positive integer, got ${v}`)
  return n
}

function fail(msg) {
  process.stderr.write(`tools-call bench: ${msg}\n`)
  process.exit(2)
}

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on any exit path.

const children = new Set()
let tmpRoot
let currentRun
let shuttingDown = false

function startChild(name, cmd, args, { env, cpu } = {}) {
  const [file, fullArgs] = cpu !== undefined ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]
  const child = spawn(file, fullArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.benchName = name
  child.output = []
  child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })))
  children.add(child)
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (!shuttingDown && !child.expectExit) {
      log(`${name} exited unexpectedly (code ${code}, signal ${signal})`)
      for (const l of child.output.slice(-20)) log(`  ${name}: ${l}`)
      currentRun?.stop?.()
      child.crashed = { code, signal }
    }
  })
  const keep = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line) continue
      child.output.push(line)
      if (child.output.length > 2000) child.output.splice(0, 1000)
    }
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  return child
}

function killAllSync() {
  for (const c of children) {
    try {
      c.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  if (tmpRoot) rmSync(tmpRoot, { recursive: true, force: true })
}

async function abort(code, why) {
  if (shuttingDown) return
  shuttingDown = true
  if (why) log(why)
  try {
    currentRun?.stop?.()
  } catch {
    // ignore
  }
  await Promise.allSettled([...children].map((c) => stopChild(c, 2000)))
  killAllSync()
  process.exit(code)
}

process.on('exit', killAllSync)
process.on('SIGINT', () => void abort(130, 'interrupted; stopping child processes'))
process.on('SIGTERM', () => void abort(143, 'terminated; stopping child processes'))
process.on('SIGHUP', () => void abort(129))
process.on('uncaughtException', (err) => void abort(1, `fatal: ${err?.stack ?? err}`))
process.on('unhandledRejection', (err) => void abort(1, `fatal: ${err?.stack ?? err}`))

// ---------------------------------------------------------------------------------------------
// /proc readings

/** Samples a pid's VmRSS every `ms` until stopped; returns the peak seen. */
function rssSampler(pid, ms = 200) {
  let peak = processMemory(pid).rss
  const t = setInterval(() => {
    const r = processMemory(pid).rss
    if (r > peak) peak = r
  }, ms)
  return () => {
    clearInterval(t)
    const r = processMemory(pid).rss
    return Math.max(peak, r)
  }
}

// ---------------------------------------------------------------------------------------------
// MCP wire helpers (fetch-based, used for set-up and sample checks; the load is autocannon's)

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
}

/** POSTs one JSON-RPC message; returns status, headers and the JSON-RPC messages (JSON or SSE). */
async function rpc(url, headers, message) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...headers },
    body: JSON.stringify(message),
  })
  const text = await res.text()
  const type = res.headers.get('content-type') ?? ''
  let messages = []
  if (type.startsWith('text/event-stream')) {
    for (const block of text.split(/\r?\n\r?\n/)) {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n')
      if (data) messages.push(JSON.parse(data))
    }
  } else if (text) {
    messages = [JSON.parse(text)]
  }
  return {
    status: res.status,
    headers: res.headers,
    type,
    text,
    messages,
    reply: messages.find((m) => m.id === message.id),
  }
}

/** Extra headers of a direct call: the 2026-07-28 request headers when the direct call is modern. */
const DIRECT_HEADERS = UPSTREAM.directModern
  ? { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'echo' }
  : {}

function callBody(tool, modern) {
  const params = { name: tool, arguments: { text: ECHO_TEXT } }
  if (modern) params._meta = ENVELOPE
  return { jsonrpc: '2.0', id: 1, method: 'tools/call', params }
}

function assertEcho(r, what) {
  const text = r.reply?.result?.content?.[0]?.text
  if (r.status !== 200 || text !== ECHO_TEXT || r.reply?.result?.isError) {
    throw new Error(
      `${what}: expected HTTP 200 and the echo ${JSON.stringify(ECHO_TEXT)}, got HTTP ${r.status}: ${r.text.slice(0, 400)}`,
    )
  }
  if (!r.text.includes(NEEDLE))
    throw new Error(
      `${what}: the body does not contain ${NEEDLE} verbatim (the per-response check would fail): ${r.text.slice(0, 400)}`,
    )
}

/** Opens one 2025-11-25 session on the gateway; returns its id. */
async function openSession(url, auth) {
  const init = await rpc(url, auth, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
  })
  const sid = init.headers.get('mcp-session-id')
  if (init.status !== 200 || !sid || init.reply?.result?.protocolVersion !== LEGACY) {
    throw new Error(`initialize failed: HTTP ${init.status}, session ${sid}: ${init.text.slice(0, 400)}`)
  }
  const h = { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }
  const note = await rpc(url, h, { jsonrpc: '2.0', method: 'notifications/initialized' })
  if (note.status !== 202)
    throw new Error(`notifications/initialized: expected 202, got ${note.status}: ${note.text.slice(0, 200)}`)
  return sid
}

async function closeSession(url, auth, sid) {
  const res = await fetch(url, {
    method: 'DELETE',
    headers: { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY },
  })
  await res.arrayBuffer()
  return res.status
}

async function promCounter(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text()
  const out = {}
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    const outcome = /outcome="([^"]+)"/.exec(line)?.[1] ?? 'all'
    out[outcome] = (out[outcome] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return out
}

async function upstreamStats(upstreamUrl) {
  return (await fetch(new URL('/stats', upstreamUrl))).json()
}

// ---------------------------------------------------------------------------------------------
// One autocannon run

/**
 * Runs autocannon; latency is recorded here in µs (autocannon's own histogram has 1 ms
 * resolution, too coarse for sub-millisecond calls).
 */
async function load({ url, connections, duration, headers, body, perClientHeaders }) {
  const hist = createHistogram({ lowest: 1, highest: 60_000_000, figures: 3 })
  let ok = 0
  let non2xxSeen = 0
  const opts = {
    url,
    connections,
    duration,
    pipelining: 1,
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    verifyBody: (b) => b.includes(NEEDLE),
    timeout: 10,
  }
  if (perClientHeaders) {
    let i = 0
    opts.setupClient = (client) => client.setHeaders(perClientHeaders[i++ % perClientHeaders.length])
  }
  const instance = autocannon(opts)
  currentRun = instance
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) {
      ok++
      hist.record(Math.max(1, Math.round(ms * 1000)))
    } else non2xxSeen++
  })
  const result = await new Promise((resolve, reject) => {
    instance.once('done', resolve)
    instance.once('error', reject)
  })
  currentRun = undefined
  const seconds = (result.finish - result.start) / 1000
  const verified = ok - result.mismatches
  return {
    seconds,
    responses: ok + non2xxSeen,
    ok: verified,
    callsPerSec: verified / seconds,
    latencyMs: {
      p50: hist.percentile(50) / 1000,
      p90: hist.percentile(90) / 1000,
      p99: hist.percentile(99) / 1000,
      max: hist.max / 1000,
      mean: hist.mean / 1000,
    },
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    non2xx: result.non2xx,
    statusCodes: result.statusCodeStats,
  }
}

// ---------------------------------------------------------------------------------------------
// Main

function gitInfo() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim()
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !==
      ''
    return { commit, srcDirty: dirty }
  } catch {
    return { commit: 'unknown', srcDirty: null }
  }
}

function newestMtime(dir) {
  let newest = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

async function main() {
  const entry = join(ROOT, 'dist', 'src', 'cli', 'main.js')
  if (!existsSync(entry)) fail('dist/ is missing: run `npm run build` first')
  const warnings = []
  if (
    newestMtime(join(ROOT, 'src')) > statSync(entry).mtimeMs &&
    newestMtime(join(ROOT, 'src')) > newestMtime(join(ROOT, 'dist'))
  ) {
    warnings.push(
      'src/ has files newer than dist/: the gateway under test may not match the source (run `npm run build`)',
    )
  }
  for (const w of warnings) log(`warning: ${w}`)

  const machineCpus = availableParallelism()
  const loadAtStart = loadavg()
  const pinning = pinningPlan(argv['no-pin'], 'upstream and load generator (this process)')
  if (pinning.pin) pinSelf(1)
  log(`pinning: ${pinning.pin ? 'on' : 'off'} (${pinning.why})`)

  tmpRoot = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'))

  // Upstream
  const upstream = startChild(
    'upstream',
    process.execPath,
    [join(BENCH_DIR, UPSTREAM.module), '0'],
    pinning.pin ? { cpu: 1 } : {},
  )
  const upstreamUrl = (await waitForLine(upstream, UPSTREAM.ready, 20_000)).value
  log(
    `upstream ${UPSTREAM_KIND}: ${upstreamUrl} (pid ${upstream.pid}); the gateway speaks ${UPSTREAM_PROTOCOL} to it`,
  )
  if (UPSTREAM.directModern && UPSTREAM_PROTOCOL !== MODERN)
    warnings.push(
      `the direct baseline calls the ${UPSTREAM_KIND} upstream in the ${MODERN} era but the gateway's connector uses ` +
        `--upstream-protocol ${UPSTREAM_PROTOCOL}: the two reach the upstream on different code paths`,
    )

  // Gateway
  const adminKey = `bench-${randomBytes(16).toString('hex')}`
  const manifest = join(tmpRoot, 'connector.yaml')
  writeFileSync(
    manifest,
    [
      'apiVersion: gatehouse/v1',
      'kind: Connector',
      'metadata: { name: up }',
      'spec:',
      '  transport: http',
      `  url: ${upstreamUrl}`,
      `  protocol: '${UPSTREAM_PROTOCOL}'`,
      '',
    ].join('\n'),
  )
  const gateway = startChild(
    'gateway',
    process.execPath,
    [
      join(ROOT, 'bin', 'gatehouse.js'),
      'start',
      '--port',
      '0',
      '--data',
      join(tmpRoot, 'data'),
      '--manifests',
      manifest,
    ],
    {
      env: { GATEHOUSE_ADMIN_KEY: adminKey, GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_LOG_LEVEL ?? 'warn' },
      ...(pinning.pin ? { cpu: 0 } : {}),
    },
  )
  const gatewayBase = (await waitForLine(gateway, /gatehouse listening on (\S+)/, 20_000)).value
  const gatewayMcp = `${gatewayBase}/mcp`
  const auth = { authorization: `Bearer ${adminKey}` }
  log(`gateway ${gatewayBase} (pid ${gateway.pid})`)
  const memStart = processMemory(gateway.pid)

  // The yardstick relay, on the gateway's CPU (idle unless its case runs).
  const relay = CASES.includes('relay')
    ? startChild('relay', process.execPath, [join(BENCH_DIR, 'lib', 'relay.mjs'), upstreamUrl, '0'], {
        ...(pinning.pin ? { cpu: 0 } : {}),
      })
    : undefined
  const relayUrl = relay ? (await waitForLine(relay, /relay listening on (\S+)/, 20_000)).value : undefined

  // Wire checks before any load.
  let legacyReplyType
  {
    const direct = await rpc(upstreamUrl, DIRECT_HEADERS, callBody('echo', UPSTREAM.directModern))
    assertEcho(direct, 'direct tools/call')
    const modern = await rpc(
      gatewayMcp,
      { ...auth, 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'up__echo' },
      callBody('up__echo', true),
    )
    assertEcho(modern, '2026-07-28 tools/call through the gateway')
    const sid = await openSession(gatewayMcp, auth)
    const list = await rpc(
      gatewayMcp,
      { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY },
      { jsonrpc: '2.0', id: 5, method: 'tools/list' },
    )
    const names = (list.reply?.result?.tools ?? []).map((t) => t.name)
    if (!names.includes('up__echo'))
      throw new Error(`tools/list through the gateway lacks up__echo: ${list.text.slice(0, 300)}`)
    const legacy = await rpc(
      gatewayMcp,
      { ...auth, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY },
      callBody('up__echo', false),
    )
    assertEcho(legacy, '2025-11-25 tools/call through the gateway')
    // Either is valid in 2025-11-25; the gateway answers JSON when nothing but the result can come back.
    legacyReplyType = legacy.type
    await closeSession(gatewayMcp, auth, sid)
    const noAuth = await rpc(
      gatewayMcp,
      { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'up__echo' },
      callBody('up__echo', true),
    )
    if (noAuth.status !== 401)
      throw new Error(`a call without credentials got HTTP ${noAuth.status}, expected 401: auth is not on`)
    log('wire checks passed (direct, 2026 stateless, 2025 session, 401 without a key)')
  }

  const results = []
  for (const connections of CONNECTIONS) {
    for (const kind of CASES) {
      if (gateway.crashed) throw new Error(`gateway crashed (${JSON.stringify(gateway.crashed)}); stopping`)
      let target
      let headers
      let body
      let perClientHeaders
      let sessions = []
      if (kind === 'direct') {
        target = upstreamUrl
        headers = { ...JSON_HEADERS, ...DIRECT_HEADERS }
        body = callBody('echo', UPSTREAM.directModern)
        assertEcho(await rpc(target, headers, body), 'direct sample')
      } else if (kind === 'relay') {
        target = relayUrl
        headers = { ...JSON_HEADERS, ...DIRECT_HEADERS }
        body = callBody('up__echo', UPSTREAM.directModern)
        assertEcho(await rpc(target, headers, body), 'relay sample')
      } else if (kind === 'modern') {
        target = gatewayMcp
        headers = {
          ...JSON_HEADERS,
          ...auth,
          'mcp-protocol-version': MODERN,
          'mcp-method': 'tools/call',
          'mcp-name': 'up__echo',
        }
        body = callBody('up__echo', true)
        assertEcho(await rpc(target, headers, body), 'modern sample')
      } else {
        target = gatewayMcp
        body = callBody('up__echo', false)
        sessions = await Promise.all(Array.from({ length: connections }, () => openSession(gatewayMcp, auth)))
        perClientHeaders = sessions.map((sid) => ({
          ...JSON_HEADERS,
          ...auth,
          'mcp-session-id': sid,
          'mcp-protocol-version': LEGACY,
        }))
        headers = perClientHeaders[0]
        for (const [i, h] of perClientHeaders.entries())
          assertEcho(await rpc(target, h, body), `legacy sample (session ${i})`)
      }

      const label = `${CASE_LABEL[kind]}, ${connections} conn`
      if (WARMUP > 0) {
        log(`${label}: warm-up ${WARMUP}s`)
        const w = await load({ url: target, connections, duration: WARMUP, headers, body, perClientHeaders })
        if (w.errors || w.timeouts || w.mismatches || w.non2xx)
          log(
            `${label}: warm-up had failures: ${JSON.stringify(w.statusCodes)} errors ${w.errors} timeouts ${w.timeouts} mismatches ${w.mismatches}`,
          )
      }

      // In relay rows the "gw" columns describe the relay, which then has CPU 0 to itself.
      const gwPid = kind === 'relay' ? relay.pid : gateway.pid
      const counted = throughGateway(kind)
      const upPid = upstream.pid
      const countersBefore = counted
        ? await promCounter(gatewayBase, 'gatehouse_tool_calls_total')
        : undefined
      const upBefore = await upstreamStats(upstreamUrl)
      const gwCpu0 = processCpuMicros(gwPid)
      const upCpu0 = processCpuMicros(upPid)
      const selfCpu0 = process.cpuUsage()
      const sys0 = machineCpuMicros()
      const memBefore = processMemory(gwPid)
      const stopSampling = rssSampler(gwPid)
      log(`${label}: measuring ${DURATION}s`)
      const r = await load({ url: target, connections, duration: DURATION, headers, body, perClientHeaders })
      const gwCpu = processCpuMicros(gwPid) - gwCpu0
      const upCpu = processCpuMicros(upPid) - upCpu0
      const selfCpuUsage = process.cpuUsage(selfCpu0)
      const sys1 = machineCpuMicros()
      const selfCpu = selfCpuUsage.user + selfCpuUsage.system
      // CPU used on this machine by processes other than the three of the bench, in % of one core:
      // the noise that other workloads add to this case.
      const otherCpuPercent = ((sys1.busy - sys0.busy - gwCpu - upCpu - selfCpu) / (r.seconds * 1e6)) * 100
      const stealPercent = ((sys1.steal - sys0.steal) / (r.seconds * 1e6)) * 100
      const peakRss = stopSampling()
      const memAfter = processMemory(gwPid)
      const upAfter = await upstreamStats(upstreamUrl)
      const countersAfter = counted ? await promCounter(gatewayBase, 'gatehouse_tool_calls_total') : undefined

      for (const sid of sessions) await closeSession(gatewayMcp, auth, sid)

      const upstreamCalls = (upAfter.byMethod['tools/call'] ?? 0) - (upBefore.byMethod['tools/call'] ?? 0)
      const otherUpstream = {}
      for (const [m, n] of Object.entries(upAfter.byMethod)) {
        const d = n - (upBefore.byMethod[m] ?? 0)
        if (m !== 'tools/call' && d) otherUpstream[m] = d
      }
      const pipeline = countersAfter
        ? Object.fromEntries(Object.entries(countersAfter).map(([k, v]) => [k, v - (countersBefore[k] ?? 0)]))
        : undefined
      const row = {
        case: kind,
        label: CASE_LABEL[kind],
        connections,
        ...r,
        gateway:
          kind === 'direct'
            ? { cpuPercent: (gwCpu / (r.seconds * 1e6)) * 100, rssBytesAfter: memAfter.rss, idle: true }
            : {
                cpuMicrosPerCall: gwCpu / r.ok,
                cpuPercent: (gwCpu / (r.seconds * 1e6)) * 100,
                rssBytesBefore: memBefore.rss,
                rssBytesAfter: memAfter.rss,
                rssBytesPeak: peakRss,
                vmHwmBytes: memAfter.hwm,
                pipelineCalls: pipeline,
              },
        upstream: {
          cpuMicrosPerCall: upCpu / r.ok,
          cpuPercent: (upCpu / (r.seconds * 1e6)) * 100,
          toolsCalls: upstreamCalls,
          otherRequests: otherUpstream,
        },
        loadGenerator: { cpuPercent: (selfCpu / (r.seconds * 1e6)) * 100 },
        machine: { otherCpuPercent: Math.max(0, otherCpuPercent), stealPercent },
      }
      // In-flight calls at the edges of a run (warm-up tail, cancelled at the end) may count on either side.
      if (counted && pipeline && Math.abs((pipeline.ok ?? 0) - r.responses) > 2 * connections) {
        warnings.push(
          `${label}: the gateway counted ${JSON.stringify(pipeline)} pipeline calls for ${r.responses} responses`,
        )
      }
      // Calls in flight when autocannon stops are cancelled upstream (2026 era); anything else is unexpected.
      const unexpected = Object.entries(otherUpstream).filter(
        ([m, n]) => m !== 'notifications/cancelled' || n > 2 * connections,
      )
      if (unexpected.length) {
        warnings.push(
          `${label}: besides tools/call the upstream saw ${JSON.stringify(Object.fromEntries(unexpected))}`,
        )
      }
      if (row.machine.otherCpuPercent > 20) {
        warnings.push(
          `${label}: other processes used ${fmt(row.machine.otherCpuPercent, 0)}% of a core meanwhile; treat this row as noisy`,
        )
      }
      results.push(row)
      log(
        `${label}: ${fmt(r.callsPerSec, 0)} calls/s, p50 ${fmt(r.latencyMs.p50, 3)} ms, p99 ${fmt(r.latencyMs.p99, 3)} ms, ` +
          `errors ${r.errors + r.timeouts + r.mismatches}, non-2xx ${r.non2xx}` +
          (kind === 'direct'
            ? ''
            : `, gateway ${fmt(row.gateway.cpuMicrosPerCall, 0)} µs CPU/call, RSS ${mb(memAfter.rss)} MB`),
      )
    }
  }

  // Shut the gateway down cleanly (flushes audit rows and spans), then count what it recorded.
  const memEnd = processMemory(gateway.pid)
  // At the default log level (warn) anything the gateway prints besides its banner is worth a look.
  const sessionStatusCheck = gateway.output.filter((l) => !/^gatehouse listening on /.test(l))
  const gwExit = await stopChild(gateway, 10_000)
  if (relay) await stopChild(relay, 5000)
  await stopChild(upstream, 5000)
  const recorded = countRecorded(join(tmpRoot, 'data'))
  const gatewayCalls = results.filter((r) => throughGateway(r.case)).reduce((n, r) => n + r.ok, 0)

  // Ratios against the direct baseline of the same run and concurrency.
  for (const row of results) {
    const base = results.find((b) => b.case === 'direct' && b.connections === row.connections)
    if (!base || row.case === 'direct') continue
    row.vsDirect = {
      throughputRatio: row.callsPerSec / base.callsPerSec,
      addedP50Ms: row.latencyMs.p50 - base.latencyMs.p50,
      addedP99Ms: row.latencyMs.p99 - base.latencyMs.p99,
    }
  }

  const report = {
    bench: 'tools-call',
    date: new Date().toISOString(),
    git: gitInfo(),
    node: process.version,
    cpu: cpus()[0]?.model,
    cpus: machineCpus,
    loadavg: loadAtStart,
    memoryBytes: totalmem(),
    pinning,
    upstream: {
      kind: UPSTREAM_KIND,
      description: UPSTREAM.description,
      gatewayProtocol: UPSTREAM_PROTOCOL,
      directCall: UPSTREAM.directModern
        ? `${MODERN} stateless (params._meta envelope, mcp-protocol-version/mcp-method/mcp-name headers)`
        : 'sessionless tools/call without _meta or mcp-* headers',
    },
    options: {
      duration: DURATION,
      warmup: WARMUP,
      connections: CONNECTIONS,
      upstream: UPSTREAM_KIND,
      upstreamProtocol: UPSTREAM_PROTOCOL,
      cases: CASES,
    },
    gateway: {
      rssBytesStart: memStart.rss,
      rssBytesEnd: memEnd.rss,
      vmHwmBytes: memEnd.hwm,
      exit: gwExit,
      legacyToolsCallContentType: legacyReplyType,
      logLinesAtWarnOrAbove: sessionStatusCheck.length,
      logSample: sessionStatusCheck.slice(0, 20),
      recorded: { ...recorded, verifiedCallsThroughGateway: gatewayCalls },
    },
    warnings,
    results,
  }

  const table = markdown(report)
  process.stdout.write(table)
  const out = argv.out
    ? resolve(argv.out)
    : join(BENCH_DIR, 'results', `tools-call-${report.date.replace(/[:.]/g, '-')}.json`)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
  process.stdout.write(`\nJSON: ${relative(process.cwd(), out) || out}\n`)
}

/** Audit rows and spans the gateway wrote (after a clean shutdown, so batches are flushed). */
function countRecorded(dataDir) {
  const db = join(dataDir, 'gatehouse.db')
  if (!existsSync(db)) return { note: 'no gatehouse.db in the data dir' }
  try {
    const script = `
      const Database = require('better-sqlite3')
      const db = new Database(process.argv[1], { readonly: true })
      const one = (sql) => db.prepare(sql).get().n
      console.log(JSON.stringify({
        auditToolCalls: one("SELECT count(*) AS n FROM audit_events WHERE action = 'tool.call'"),
        // A tool call's span is kept in its audit row (schema 9); other spans in the spans table.
        spans:
          one('SELECT count(*) AS n FROM spans') +
          one("SELECT count(*) AS n FROM audit_events WHERE action = 'tool.call' AND span_id IS NOT NULL"),
      }))`
    return JSON.parse(execFileSync(process.execPath, ['-e', script, db], { cwd: ROOT, encoding: 'utf8' }))
  } catch (err) {
    return { note: `could not read ${db}: ${String(err.message).split('\n')[0]}` }
  }
}

const fmt = (n, digits) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–'
const mb = (b) => fmt(b / 2 ** 20, 1)

function markdown(report) {
  const lines = []
  const o = report.options
  lines.push(`## tools/call: gateway vs direct, ${report.upstream.kind} upstream (${report.date})`)
  lines.push('')
  lines.push(
    `node ${report.node}, ${report.cpus} CPUs (${report.cpu}), load average ${report.loadavg.map((l) => l.toFixed(2)).join(' ')} at start; ` +
      `git ${report.git.commit}${report.git.srcDirty ? ' (src/ modified)' : ''}; ${o.duration}s per case after ${o.warmup}s warm-up; ` +
      `upstream: ${report.upstream.kind} = ${report.upstream.description}, direct calls ${report.upstream.directCall}, ` +
      `gateway connector protocol ${o.upstreamProtocol}; pinning ${report.pinning.pin ? 'on' : 'off'} (${report.pinning.why}).`,
  )
  lines.push('')
  lines.push(
    '| conns | case | calls/s | p50 ms | p99 ms | errors | non-2xx | × direct | +p50 ms | +p99 ms | gw CPU µs/call | gw CPU % | gw RSS MB | up CPU µs/call | up+lg CPU % | other load % |',
  )
  lines.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of report.results) {
    const g = r.gateway
    const direct = r.case === 'direct'
    const cells = [
      r.connections,
      r.label,
      fmt(r.callsPerSec, 0),
      fmt(r.latencyMs.p50, 3),
      fmt(r.latencyMs.p99, 3),
      r.errors + r.timeouts + r.mismatches,
      r.non2xx,
      direct ? '1.00' : fmt(r.vsDirect?.throughputRatio, 3),
      direct ? '–' : fmt(r.vsDirect?.addedP50Ms, 3),
      direct ? '–' : fmt(r.vsDirect?.addedP99Ms, 3),
      direct ? '–' : fmt(g.cpuMicrosPerCall, 0),
      direct ? `(idle ${fmt(g.cpuPercent, 0)})` : fmt(g.cpuPercent, 0),
      mb(g.rssBytesAfter),
      fmt(r.upstream.cpuMicrosPerCall, 0),
      fmt(r.upstream.cpuPercent + r.loadGenerator.cpuPercent, 0),
      fmt(r.machine.otherCpuPercent, 0),
    ]
    lines.push(`| ${cells.join(' | ')} |`)
  }
  lines.push('')
  const gw = report.gateway
  lines.push(
    `Gateway memory: RSS ${mb(gw.rssBytesStart)} MB at start, ${mb(gw.rssBytesEnd)} MB at end, peak (VmHWM) ${mb(gw.vmHwmBytes)} MB. ` +
      `Exit after SIGTERM: ${JSON.stringify(gw.exit)}. Lines logged at warn or above: ${gw.logLinesAtWarnOrAbove}. ` +
      `A 2025-11-25 tools/call is answered with ${gw.legacyToolsCallContentType}.`,
  )
  const rec = gw.recorded
  if (rec.auditToolCalls !== undefined) {
    lines.push(
      `Recorded by the gateway: ${rec.auditToolCalls} tool.call audit rows and ${rec.spans} spans for ${rec.verifiedCallsThroughGateway} ` +
        'verified measured calls (the rest are warm-up and sample calls).',
    )
  } else if (rec.note) lines.push(`Recorded by the gateway: ${rec.note}.`)
  lines.push('')
  lines.push(
    'errors = connection errors + timeouts + 2xx bodies without the echo. × direct = calls/s ÷ direct calls/s at the same ' +
      'concurrency in this run; +p50/+p99 = gateway percentile − direct percentile. gw CPU = utime+stime of the gateway ' +
      'process (all threads) per verified call, and in % of one core; gw RSS = VmRSS after the case (in relay rows: the ' +
      "relay's, on the gateway's CPU). up CPU = the same for " +
      'the upstream; up+lg CPU % = upstream + load generator (this process), which share one core when pinned: near 100 % ' +
      'that core, not the gateway, bounds calls/s. other load = CPU used by processes outside the bench during the case, ' +
      'in % of one core (noise).',
  )
  for (const w of report.warnings) lines.push(`\n> warning: ${w}`)
  return lines.join('\n') + '\n'
}

await main().then(
  () => {
    shuttingDown = true
    killAllSync()
    process.exit(0)
  },
  (err) => abort(1, `failed: ${err?.stack ?? err}`),
)
