#!/usr/bin/env node
// Durable runs: runs/s and time to first event of a one-step agent, and recovery after SIGKILL.
//
//   node bench/runs.mjs [--duration 10] [--concurrency 1,50] [--warmup 2] [--cases baseline,runs,recovery]
//                       [--recovery-rounds 3] [--recovery-runs 5] [--recovery-steps 50]
//                       [--recovery-sleep-ms 100] [--kill-after-ms 1000] [--recovery-poll-ms 20] [--recovery-pid1]
//                       [--config FILE] [--gateway-node-args=ARGS] [--no-pin] [--out FILE]
//
// Uses the built gateway (dist/, so `npm run build` first), started as a child process exactly as
// `gatehouse start` runs in production, with one Agent: test/fixtures/agents/flex.mjs. Cases:
//   baseline  GET /v1/runs/{id} of an existing run: one authenticated REST round trip with a store
//             read; runs/s is reported as a ratio against it (same run, same concurrency)
//   runs      each worker loops: POST /v1/runs {agent: flex, input: {mode: echo, text}}, then
//             GET /v1/runs/{id}/events (SSE) until `end`. Times from sending the POST: the first
//             agent event (`token`), the first SSE event of any kind, and `end`. Every run must end
//             `succeeded` with its own text echoed (token and output), or it counts as an error
//   recovery  N long runs (mode steps) mid-step, SIGKILL the gateway, restart it at once on the same
//             data dir; times from the kill to: new process ready, each run claimed again
//             (attempts 2, status running), its next progress event. Repeated --recovery-rounds.
//             --recovery-pid1 runs each of these gateways as PID 1 of its own PID namespace
//             (unshare --pid --fork), as in a container: the restarted process has the dead one's PID
// --config FILE passes `--config FILE` to the gateway (e.g. to try another runPollMs);
// --gateway-node-args="--cpu-prof --cpu-prof-dir=DIR" adds node flags to the gateway's command line (note the =).
// See bench/README.md ("Runs") for how to read the numbers.

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
import { createHistogram, performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { Pool } from 'undici'
import {
  cpuMeter,
  machineCpuMicros,
  pinningPlan,
  pinSelf,
  processCpuMicros,
  processMemory,
  stopChild,
  waitForLine,
} from './lib/proc.mjs'
import { SseParser } from './lib/sse.mjs'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(BENCH_DIR, '..')
const BIN = join(ROOT, 'bin', 'gatehouse.js')
const AGENT_MODULE = join(ROOT, 'test', 'fixtures', 'agents', 'flex.mjs')
const AGENT = 'flex'
const TARGETS = {
  issue: { firstEventP50Ms: 10, recoveryMs: 2000 },
  spec: { firstEventP50Ms: 5, runsPerSec: 500, resumeAfterRestartMs: 1000 },
}

// ---------------------------------------------------------------------------------------------
// Options

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '1,50' },
    cases: { type: 'string', default: 'baseline,runs,recovery' },
    'recovery-rounds': { type: 'string', default: '3' },
    'recovery-runs': { type: 'string', default: '5' },
    'recovery-steps': { type: 'string', default: '50' },
    'recovery-sleep-ms': { type: 'string', default: '100' },
    'kill-after-ms': { type: 'string', default: '1000' },
    'recovery-poll-ms': { type: 'string', default: '20' },
    'recovery-pid1': { type: 'boolean', default: false },
    input: { type: 'string' },
    config: { type: 'string' },
    'gateway-node-args': { type: 'string' },
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
      .slice(1, 25)
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n') + '\n',
  )
  process.exit(0)
}

function fail(msg) {
  process.stderr.write(`runs bench: ${msg}\n`)
  process.exit(2)
}
function positive(v, name, { allowZero = false } = {}) {
  const n = Number(v)
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1))
    fail(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${v}`)
  return n
}
const DURATION = positive(argv.duration, '--duration')
const WARMUP = Number(argv.warmup)
if (!Number.isFinite(WARMUP) || WARMUP < 0) fail('--warmup must be a number ≥ 0')
const CONCURRENCY = argv.concurrency.split(',').map((c) => positive(c.trim(), '--concurrency'))
const CASES = argv.cases.split(',').map((c) => c.trim())
for (const c of CASES)
  if (!['baseline', 'runs', 'recovery'].includes(c)) fail(`unknown case ${c} (baseline, runs, recovery)`)
const ROUNDS = positive(argv['recovery-rounds'], '--recovery-rounds')
const RECOVERY_RUNS = positive(argv['recovery-runs'], '--recovery-runs')
const RECOVERY_STEPS = positive(argv['recovery-steps'], '--recovery-steps')
const RECOVERY_SLEEP = positive(argv['recovery-sleep-ms'], '--recovery-sleep-ms', { allowZero: true })
const KILL_AFTER = positive(argv['kill-after-ms'], '--kill-after-ms', { allowZero: true })
const RECOVERY_POLL = positive(argv['recovery-poll-ms'], '--recovery-poll-ms')
/** The runs case's agent input; the default (echo) gets a unique `text` per run, checked in the token and the output. */
const RUN_INPUT = (() => {
  if (!argv.input) return { mode: 'echo' }
  try {
    const v = JSON.parse(argv.input)
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
    return v
  } catch (err) {
    return fail(
      `--input must be a JSON object for the flex agent, e.g. '{"mode":"steps","steps":3}': ${err.message}`,
    )
  }
})()
const ECHO = RUN_INPUT.mode === 'echo'
const GATEWAY_CONFIG = argv.config ? resolve(argv.config) : undefined
if (GATEWAY_CONFIG && !existsSync(GATEWAY_CONFIG)) fail(`--config ${GATEWAY_CONFIG} does not exist`)

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on any exit path.

const children = new Set()
let tmpRoot
let shuttingDown = false
/** Set when a gateway dies unexpectedly: load loops stop. */
let crashed

function startChild(name, cmd, args, { env, cpu } = {}) {
  const [file, fullArgs] = cpu !== undefined ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]
  const child = spawn(file, fullArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.benchName = name
  child.output = []
  child.exited = new Promise((r) =>
    child.once('exit', (code, signal) => r({ code, signal, at: performance.now() })),
  )
  children.add(child)
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (!shuttingDown && !child.expectExit) {
      log(`${name} exited unexpectedly (code ${code}, signal ${signal})`)
      for (const l of child.output.slice(-20)) log(`  ${name}: ${l}`)
      crashed = { name, code, signal }
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
// Gateway

const ADMIN_KEY = `bench-${randomBytes(16).toString('hex')}`
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` }
const JSON_POST = { ...AUTH, 'content-type': 'application/json' }
let manifestFile
let pinning

/** Spawns `gatehouse start` on `dataDir`; resolves once it printed its ready line. */
async function startGateway(dataDir, { pid1 = false } = {}) {
  const nodeArgs = argv['gateway-node-args'] ? argv['gateway-node-args'].split(/\s+/).filter(Boolean) : []
  let cmd = process.execPath
  let args = [...nodeArgs, BIN, 'start', '--port', '0', '--data', dataDir, '--manifests', manifestFile]
  if (GATEWAY_CONFIG) args.push('--config', GATEWAY_CONFIG)
  if (pid1) {
    // The gateway becomes PID 1 of a new PID namespace; it dies with unshare (SIGKILL).
    args = ['--pid', '--fork', '--kill-child', cmd, ...args]
    cmd = 'unshare'
  }
  const spawnedAt = performance.now()
  const child = startChild('gateway', cmd, args, {
    env: {
      GATEHOUSE_ADMIN_KEY: ADMIN_KEY,
      GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_LOG_LEVEL ?? 'warn',
    },
    ...(pinning.pin ? { cpu: 0 } : {}),
  })
  const ready = await waitForLine(child, /gatehouse listening on (\S+)/)
  const url = ready.value
  const gw = {
    child,
    url,
    pid: child.pid,
    spawnedAt,
    readyAt: ready.at,
    // One request in flight per worker; the SSE streams are read to their end so connections return.
    pool: new Pool(url, { connections: Math.max(...CONCURRENCY, RECOVERY_RUNS) + 4, pipelining: 1 }),
  }
  return gw
}

/** Lines the gateway logged besides its ready line (at the default level: warnings and errors). */
const gatewayLogLines = (gw) => gw.child.output.filter((l) => !/^gatehouse listening on /.test(l))

async function request(pool, method, path, body) {
  const res = await pool.request({
    path,
    method,
    headers: body === undefined ? AUTH : JSON_POST,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.body.text()
  let json
  try {
    json = text ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  return { status: res.statusCode, json, text }
}

// ---------------------------------------------------------------------------------------------
// One run, as a client sees it

const newHistogram = () => createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 })
/** µs, at least 1 (the histogram's lowest value). */
const us = (ms) => Math.max(1, Math.round(ms * 1000))

function summary(h) {
  if (!h.count) return { count: 0 }
  return {
    count: h.count,
    p50: h.percentile(50) / 1000,
    p90: h.percentile(90) / 1000,
    p99: h.percentile(99) / 1000,
    max: h.max / 1000,
    mean: h.mean / 1000,
  }
}

/** Event types the run itself writes; anything else is the agent's. */
const SYSTEM_EVENTS = new Set(['status', 'interrupt', 'end'])

/**
 * POST /v1/runs, then follow its events until `end`. Returns the times (ms since the POST was sent)
 * and throws on anything but a succeeded run; an echo run must also carry its own `text` in its
 * first agent event (`token`) and in its output.
 */
async function oneRun(pool, text) {
  const input = ECHO ? { ...RUN_INPUT, text } : RUN_INPUT
  const t0 = performance.now()
  const created = await pool.request({
    path: '/v1/runs',
    method: 'POST',
    headers: JSON_POST,
    body: JSON.stringify({ agent: AGENT, input }),
  })
  const run = await created.body.json()
  const tCreated = performance.now()
  if (created.statusCode !== 201 || typeof run?.id !== 'string')
    throw new Error(`POST /v1/runs: HTTP ${created.statusCode} ${JSON.stringify(run).slice(0, 200)}`)
  const sse = await pool.request({
    path: `/v1/runs/${run.id}/events`,
    method: 'GET',
    headers: { ...AUTH, accept: 'text/event-stream' },
  })
  const tHeaders = performance.now()
  if (sse.statusCode !== 200) {
    const body = await sse.body.text()
    throw new Error(`GET /v1/runs/${run.id}/events: HTTP ${sse.statusCode} ${body.slice(0, 200)}`)
  }
  let tAny
  let tAgent
  let tEnd
  let first
  let end
  let lastId = 0
  let badId
  const parser = new SseParser((e) => {
    const now = performance.now()
    tAny ??= now
    const id = Number(e.id)
    if (!Number.isInteger(id) || id <= lastId) badId ??= `event ${e.event} has id ${e.id} after ${lastId}`
    else lastId = id
    if (!SYSTEM_EVENTS.has(e.event) && tAgent === undefined) {
      tAgent = now
      first = { event: e.event, data: JSON.parse(e.data) }
    } else if (e.event === 'end' && tEnd === undefined) {
      tEnd = now
      end = JSON.parse(e.data)
    }
  })
  for await (const chunk of sse.body) parser.push(chunk)
  if (tEnd === undefined) throw new Error(`run ${run.id}: the event stream closed without an end event`)
  if (end.status !== 'succeeded' || (ECHO && end.output?.text !== text))
    throw new Error(
      `run ${run.id}: ended ${JSON.stringify(end).slice(0, 200)}, expected succeeded${ECHO ? ' with the echo' : ''}`,
    )
  if (tAgent === undefined) throw new Error(`run ${run.id}: no agent event before end`)
  if (ECHO && (first.event !== 'token' || first.data?.text !== text))
    throw new Error(
      `run ${run.id}: the first agent event is not a token with the echo (${JSON.stringify(first)})`,
    )
  if (badId) throw new Error(`run ${run.id}: ${badId}`)
  return {
    id: run.id,
    createMs: tCreated - t0,
    headersMs: tHeaders - t0,
    firstAnyMs: tAny - t0,
    firstTokenMs: tAgent - t0,
    endMs: tEnd - t0,
  }
}

/** Runs `op(worker)` in `concurrency` loops for `seconds`; returns the wall time until the last loop ended. */
async function drive(concurrency, seconds, op) {
  const t0 = performance.now()
  const deadline = t0 + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < deadline && !crashed && !shuttingDown) await op(w)
    }),
  )
  return (performance.now() - t0) / 1000
}

async function runsCase(gw, concurrency, seconds, record) {
  const h = {
    create: newHistogram(),
    headers: newHistogram(),
    firstAny: newHistogram(),
    firstToken: newHistogram(),
    end: newHistogram(),
  }
  let ok = 0
  let errors = 0
  const errorSamples = []
  const ids = []
  const tag = randomBytes(4).toString('hex')
  let n = 0
  const elapsed = await drive(concurrency, seconds, async (w) => {
    const text = `bench-${tag}-${w}-${n++}`
    try {
      const r = await oneRun(gw.pool, text)
      ok++
      if (record) {
        ids.push(r.id)
        h.create.record(us(r.createMs))
        h.headers.record(us(r.headersMs))
        h.firstAny.record(us(r.firstAnyMs))
        h.firstToken.record(us(r.firstTokenMs))
        h.end.record(us(r.endMs))
      }
    } catch (err) {
      errors++
      if (errorSamples.length < 5) errorSamples.push(String(err?.message ?? err))
      await sleep(10) // no hot loop against a broken gateway
    }
  })
  return {
    seconds: elapsed,
    ok,
    errors,
    errorSamples,
    perSec: ok / elapsed,
    ids,
    latencyMs: {
      create: summary(h.create),
      sseHeaders: summary(h.headers),
      firstSseEvent: summary(h.firstAny),
      firstEvent: summary(h.firstToken),
      end: summary(h.end),
    },
  }
}

async function baselineCase(gw, concurrency, seconds, runId) {
  const h = newHistogram()
  let ok = 0
  let errors = 0
  const errorSamples = []
  const elapsed = await drive(concurrency, seconds, async () => {
    const t0 = performance.now()
    try {
      const res = await gw.pool.request({ path: `/v1/runs/${runId}`, method: 'GET', headers: AUTH })
      const body = await res.body.json()
      const ms = performance.now() - t0
      if (res.statusCode !== 200 || body?.id !== runId || body?.status !== 'succeeded')
        throw new Error(`GET /v1/runs/${runId}: HTTP ${res.statusCode} ${JSON.stringify(body).slice(0, 200)}`)
      ok++
      h.record(us(ms))
    } catch (err) {
      errors++
      if (errorSamples.length < 5) errorSamples.push(String(err?.message ?? err))
      await sleep(10)
    }
  })
  return {
    seconds: elapsed,
    ok,
    errors,
    errorSamples,
    perSec: ok / elapsed,
    latencyMs: { request: summary(h) },
  }
}

/**
 * Server-side timings of measured runs from the gateway's database (ms resolution: the store's
 * ISO timestamps): created → claimed (status running event), claimed → first agent event → end.
 */
function serverBreakdown(dbFile, ids) {
  if (!ids.length || !existsSync(dbFile)) return undefined
  const db = new Database(dbFile, { readonly: true })
  try {
    const runStmt = db.prepare('SELECT created_at FROM runs WHERE id = ?')
    const evStmt = db.prepare('SELECT type, data, at FROM run_events WHERE run_id = ? ORDER BY seq')
    const h = {
      queued: newHistogram(),
      toToken: newHistogram(),
      tokenToEnd: newHistogram(),
      total: newHistogram(),
    }
    const ms = (a, b) => Date.parse(b) - Date.parse(a)
    const rec = (hist, v) => hist.record(Math.max(1, Math.round(v * 1000 + 1))) // +1 µs: 0 ms is a valid value
    for (const id of ids) {
      const run = runStmt.get(id)
      if (!run) continue
      const events = evStmt.all(id)
      const running = events.find((e) => e.type === 'status' && JSON.parse(e.data).status === 'running')
      const token = events.find((e) => !SYSTEM_EVENTS.has(e.type))
      const end = events.find((e) => e.type === 'end')
      if (!running || !token || !end) continue
      rec(h.queued, ms(run.created_at, running.at))
      rec(h.toToken, ms(running.at, token.at))
      rec(h.tokenToEnd, ms(token.at, end.at))
      rec(h.total, ms(run.created_at, end.at))
    }
    const s = (x) => {
      const r = summary(x)
      return r.count
        ? { count: r.count, p50: Math.round(r.p50), p99: Math.round(r.p99), max: Math.round(r.max) }
        : r
    }
    return {
      createdToClaimedMs: s(h.queued),
      claimedToTokenMs: s(h.toToken),
      tokenToEndMs: s(h.tokenToEnd),
      createdToEndMs: s(h.total),
    }
  } finally {
    db.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery

async function recoveryCase(warnings) {
  const dataDir = join(tmpRoot, 'recovery-data')
  const rounds = []
  const pid1 = argv['recovery-pid1']
  let gw = await startGateway(dataDir, { pid1 })
  log(
    `recovery: gateway ${gw.url} (pid ${gw.pid}); ${RECOVERY_RUNS} runs × ${RECOVERY_STEPS} steps × ${RECOVERY_SLEEP} ms per round`,
  )
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      if (crashed) throw new Error(`a gateway crashed (${JSON.stringify(crashed)})`)
      const stepLog = join(tmpRoot, `steps-${round}.log`)
      writeFileSync(stepLog, '')
      const ids = []
      for (let i = 0; i < RECOVERY_RUNS; i++) {
        const r = await request(gw.pool, 'POST', '/v1/runs', {
          agent: AGENT,
          input: { mode: 'steps', steps: RECOVERY_STEPS, sleepMs: RECOVERY_SLEEP, log: stepLog },
        })
        if (r.status !== 201)
          throw new Error(`recovery: POST /v1/runs: HTTP ${r.status} ${r.text.slice(0, 200)}`)
        ids.push(r.json.id)
      }
      await sleep(KILL_AFTER)
      for (const id of ids) {
        const r = await request(gw.pool, 'GET', `/v1/runs/${id}`)
        if (r.json?.status !== 'running' || r.json?.attempts !== 1)
          throw new Error(
            `recovery: run ${id} is ${r.json?.status} (attempts ${r.json?.attempts}) before the kill; ` +
              'expected running on its first attempt (raise --recovery-steps or lower --kill-after-ms)',
          )
      }
      const stepsBefore = readFileSync(stepLog, 'utf8').split('\n').filter(Boolean).length

      // SIGKILL, wait for the exit (as a supervisor would), restart on the same data dir at once.
      const old = gw
      old.child.expectExit = true
      await old.pool.destroy().catch(() => undefined)
      const m0 = machineCpuMicros()
      const self0 = process.cpuUsage()
      const killWall = Date.now()
      const killAt = performance.now()
      old.child.kill('SIGKILL')
      const exit = await old.child.exited
      gw = await startGateway(dataDir, { pid1 })
      const readyMs = gw.readyAt - killAt

      // Poll every run until it is running again on a second attempt.
      const seen = new Map()
      const deadline = performance.now() + 60_000
      while (seen.size < ids.length && performance.now() < deadline) {
        const tick = performance.now()
        await Promise.all(
          ids
            .filter((id) => !seen.has(id))
            .map(async (id) => {
              const r = await request(gw.pool, 'GET', `/v1/runs/${id}`)
              const at = performance.now()
              if (r.json?.attempts >= 2)
                seen.set(id, {
                  at,
                  status: r.json.status,
                  updatedAt: r.json.updated_at,
                  attempts: r.json.attempts,
                })
            }),
        )
        const left = RECOVERY_POLL - (performance.now() - tick)
        if (seen.size < ids.length && left > 0) await sleep(left)
      }
      if (seen.size < ids.length)
        throw new Error(
          `recovery round ${round}: ${ids.length - seen.size} runs not claimed again within 60 s`,
        )
      // CPU from the kill until every run was seen running: the new gateway's (boot included) and the rest (noise).
      const windowSec = (performance.now() - killAt) / 1000
      const gwCpu = processCpuMicros(pid1 ? unsharedChild(gw.pid) : gw.pid)
      const selfUse = process.cpuUsage(self0)
      const otherCpu = machineCpuMicros().busy - m0.busy - gwCpu - selfUse.user - selfUse.system

      // Let them finish, then check the outcome and that every step ran exactly once (bar the one in flight).
      const finals = await Promise.all(
        ids.map((id) => request(gw.pool, 'GET', `/v1/runs/${id}/wait?timeout=120`)),
      )
      const failures = []
      for (const [i, r] of finals.entries()) {
        const done = r.json?.output?.done
        const okOutput =
          Array.isArray(done) && done.length === RECOVERY_STEPS && done.every((v, j) => v === j * 10)
        if (r.json?.status !== 'succeeded' || !okOutput)
          failures.push(
            `run ${ids[i]}: ${r.json?.status} ${JSON.stringify(r.json?.output ?? r.json?.error).slice(0, 120)}`,
          )
      }
      const steps = checkStepLog(stepLog, ids)

      // Claim time and the next progress event, from the store (ms resolution, wall clock).
      const db = new Database(join(dataDir, 'gatehouse.db'), { readonly: true })
      const killIso = new Date(killWall).toISOString()
      const nextProgress = db.prepare(
        "SELECT MIN(at) AS at FROM run_events WHERE run_id = ? AND type = 'progress' AND at > ?",
      )
      const perRun = ids.map((id) => {
        const s = seen.get(id)
        const progressAt = nextProgress.get(id, killIso)?.at
        return {
          id,
          statusSeen: s.status,
          attempts: s.attempts,
          killToSeenMs: s.at - killAt,
          killToClaimedMs: Date.parse(s.updatedAt) - killWall,
          readyToClaimedMs: Date.parse(s.updatedAt) - killWall - readyMs,
          killToNextProgressMs: progressAt ? Date.parse(progressAt) - killWall : null,
        }
      })
      db.close()

      const row = {
        round,
        runs: ids.length,
        stepsDoneBeforeKill: stepsBefore,
        exitSignal: exit.signal,
        killToExitMs: exit.at - killAt,
        newGatewayCpuMs: gwCpu / 1000,
        otherCpuPercent: Math.max(0, (otherCpu / (windowSec * 1e6)) * 100),
        spawnToReadyMs: gw.readyAt - gw.spawnedAt,
        killToReadyMs: readyMs,
        killToClaimedMs: stat(perRun.map((r) => r.killToClaimedMs)),
        readyToClaimedMs: stat(perRun.map((r) => r.readyToClaimedMs)),
        killToSeenRunningMs: stat(perRun.map((r) => r.killToSeenMs)),
        killToNextProgressMs: stat(perRun.map((r) => r.killToNextProgressMs).filter((v) => v !== null)),
        claimedByLeaseExpiry: perRun.filter((r) => r.killToClaimedMs >= 5000).length,
        succeeded: ids.length - failures.length,
        failures,
        steps,
        perRun,
      }
      if (row.otherCpuPercent > 20)
        warnings.push(
          `recovery round ${round}: other processes used ${fmt(row.otherCpuPercent, 0)}% of a core between the kill and ` +
            'the last run seen running; treat this round as noisy',
        )
      if (row.claimedByLeaseExpiry)
        warnings.push(
          `recovery round ${round}: ${row.claimedByLeaseExpiry} runs were claimed ≥ 5 s after the kill, i.e. when their lease ` +
            'expired, not by dead-owner detection',
        )
      if (failures.length)
        warnings.push(`recovery round ${round}: ${failures.length} runs did not succeed: ${failures[0]}`)
      if (steps.duplicated || steps.missing)
        warnings.push(
          `recovery round ${round}: step log: ${steps.duplicated} duplicated, ${steps.missing} missing executions`,
        )
      rounds.push(row)
      log(
        `recovery round ${round}: kill → ready ${fmt(readyMs, 0)} ms, kill → claimed p50 ${fmt(row.killToClaimedMs.p50, 0)} / max ${fmt(row.killToClaimedMs.max, 0)} ms, ` +
          `ready → claimed max ${fmt(row.readyToClaimedMs.max, 0)} ms, kill → next progress max ${fmt(row.killToNextProgressMs.max, 0)} ms, ` +
          `${row.succeeded}/${ids.length} succeeded, ${steps.reexecuted} steps re-executed`,
      )
    }
  } finally {
    const logLines = gatewayLogLines(gw)
    await gw.pool.destroy().catch(() => undefined)
    await stopChild(gw.child)
    if (logLines.length)
      warnings.push(`recovery gateway logged ${logLines.length} lines at warn or above, e.g. ${logLines[0]}`)
  }
  const all = (k) => rounds.flatMap((r) => r.perRun.map((p) => p[k]))
  return {
    rounds,
    overall: {
      killToReadyMs: stat(rounds.map((r) => r.killToReadyMs)),
      spawnToReadyMs: stat(rounds.map((r) => r.spawnToReadyMs)),
      killToClaimedMs: stat(all('killToClaimedMs')),
      readyToClaimedMs: stat(all('readyToClaimedMs')),
      killToSeenRunningMs: stat(all('killToSeenMs')),
      killToNextProgressMs: stat(all('killToNextProgressMs').filter((v) => v !== null)),
    },
  }
}

/** The pid of the process `unshare --fork` started (its only child). */
function unsharedChild(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]) || pid
  } catch {
    return pid
  }
}

/** Lines `${runId}:${step}:${attempt}` written by the flex agent: each step once, plus re-executions. */
function checkStepLog(file, ids) {
  const count = new Map()
  let reexecuted = 0
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue
    const [run, step, attempt] = line.split(':')
    if (Number(attempt) > 1) reexecuted++
    const k = `${run}:${step}`
    count.set(k, (count.get(k) ?? 0) + 1)
  }
  let missing = 0
  let duplicated = 0
  for (const id of ids)
    for (let i = 0; i < RECOVERY_STEPS; i++) {
      const c = count.get(`${id}:${i}`) ?? 0
      if (c === 0) missing++
      else if (c > 2) duplicated += c - 2
    }
  // A step may run twice only when the kill hit it in flight: at most one per run.
  const twice = [...count.values()].filter((c) => c === 2).length
  if (twice > ids.length) duplicated += twice - ids.length
  return { reexecuted, missing, duplicated }
}

function stat(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return { count: 0 }
  const q = (p) => v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]
  return { count: v.length, min: v[0], p50: q(50), max: v[v.length - 1] }
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
  if (!existsSync(entry) || !existsSync(join(ROOT, 'dist', 'src', 'runs', 'engine.js')))
    fail('dist/ is missing or has no durable runs: run `npm run build` first')
  const warnings = []
  if (newestMtime(join(ROOT, 'src')) > newestMtime(join(ROOT, 'dist')))
    warnings.push(
      'src/ has files newer than dist/: the gateway under test may not match the source (run `npm run build`)',
    )
  for (const w of warnings) log(`warning: ${w}`)

  const loadAtStart = loadavg()
  const machineCpus = availableParallelism()
  pinning = pinningPlan(argv['no-pin'])
  if (pinning.pin) pinSelf(1)
  log(`pinning: ${pinning.pin ? 'on' : 'off'} (${pinning.why})`)

  tmpRoot = mkdtempSync(join(tmpdir(), 'gatehouse-bench-runs-'))
  manifestFile = join(tmpRoot, 'agents.yaml')
  writeFileSync(
    manifestFile,
    [
      'apiVersion: gatehouse/v1',
      'kind: Agent',
      `metadata: { name: ${AGENT} }`,
      `spec: { type: code, module: ${JSON.stringify(AGENT_MODULE)} }`,
      '',
    ].join('\n'),
  )

  const results = []
  let loadGateway
  const loadCases = CASES.filter((c) => c !== 'recovery')
  if (loadCases.length) {
    const dataDir = join(tmpRoot, 'data')
    const gw = await startGateway(dataDir)
    log(`gateway ${gw.url} (pid ${gw.pid}), ready ${fmt(gw.readyAt - gw.spawnedAt, 0)} ms after spawn`)
    const memStart = processMemory(gw.pid)

    // Wire checks: a run end to end, a stream resumed with Last-Event-ID, 401 without a key.
    // The baseline reads an echo run whatever --input says.
    const sampleRes = await request(gw.pool, 'POST', '/v1/runs', {
      agent: AGENT,
      input: { mode: 'echo', text: 'bench-sample' },
    })
    if (sampleRes.status !== 201)
      throw new Error(`POST /v1/runs: HTTP ${sampleRes.status} ${sampleRes.text.slice(0, 200)}`)
    const sampleEnd = await request(gw.pool, 'GET', `/v1/runs/${sampleRes.json.id}/wait?timeout=10`)
    if (sampleEnd.json?.status !== 'succeeded' || sampleEnd.json?.output?.text !== 'bench-sample')
      throw new Error(`the sample echo run did not succeed: ${sampleEnd.text.slice(0, 300)}`)
    const sample = { id: sampleRes.json.id }
    await oneRun(gw.pool, 'bench-check')
    const resumed = await gw.pool.request({
      path: `/v1/runs/${sample.id}/events`,
      method: 'GET',
      headers: { ...AUTH, 'last-event-id': '2' },
    })
    const resumedText = await resumed.body.text()
    const resumedIds = [...resumedText.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
    if (
      resumed.statusCode !== 200 ||
      !resumedIds.length ||
      resumedIds[0] !== 3 ||
      !/event: end/.test(resumedText)
    )
      throw new Error(
        `Last-Event-ID 2 did not resume at id 3: HTTP ${resumed.statusCode} ${resumedText.slice(0, 300)}`,
      )
    const anon = await gw.pool.request({ path: `/v1/runs/${sample.id}`, method: 'GET' })
    await anon.body.dump()
    if (anon.statusCode !== 401)
      throw new Error(`GET /v1/runs/{id} without a key: HTTP ${anon.statusCode}, expected 401`)
    log(
      `wire checks passed (echo run ${sample.id}: ${resumedIds.length} events after Last-Event-ID 2; 401 without a key)`,
    )

    for (const concurrency of CONCURRENCY) {
      for (const kind of loadCases) {
        if (crashed) throw new Error(`gateway crashed (${JSON.stringify(crashed)})`)
        const label = `${kind}, concurrency ${concurrency}`
        const run = (seconds, record) =>
          kind === 'runs'
            ? runsCase(gw, concurrency, seconds, record)
            : baselineCase(gw, concurrency, seconds, sample.id)
        if (WARMUP > 0) {
          log(`${label}: warm-up ${WARMUP}s`)
          const w = await run(WARMUP, false)
          if (w.errors) log(`${label}: warm-up had ${w.errors} errors, e.g. ${w.errorSamples[0]}`)
        }
        log(`${label}: measuring ${DURATION}s`)
        const meter = cpuMeter(gw.pid)
        meter.start()
        const r = await run(DURATION, true)
        const cpu = meter.stop(r.seconds)
        const mem = processMemory(gw.pid)
        const row = {
          case: kind,
          concurrency,
          ...r,
          gateway: {
            cpuMicrosPerOp: cpu.gatewayMicros / r.ok,
            cpuPercent: cpu.gatewayPercent,
            mainThreadCpuPercent: cpu.mainThreadPercent,
            mainThreadRunqueueWaitPercent: cpu.mainThreadRunqueueWaitPercent,
            rssBytesAfter: mem.rss,
          },
          loadGenerator: { cpuPercent: cpu.benchPercent },
          machine: {
            otherCpuPercent: cpu.otherPercent,
            stealPercent: cpu.stealPercent,
            topOther: cpu.topOther,
          },
        }
        if (r.errors) warnings.push(`${label}: ${r.errors} errors, e.g. ${r.errorSamples[0]}`)
        if (cpu.otherPercent > 20)
          warnings.push(
            `${label}: other processes used ${fmt(cpu.otherPercent, 0)}% of a core meanwhile (top: ` +
              `${cpu.topOther.map((p) => `${p.comm} ${fmt(p.cpuPercent, 0)}%`).join(', ') || 'short-lived or kernel'}); treat this row as noisy`,
          )
        results.push(row)
        const l = kind === 'runs' ? r.latencyMs.firstEvent : r.latencyMs.request
        log(
          `${label}: ${fmt(r.perSec, 0)}/s, ${kind === 'runs' ? 'first event' : 'latency'} p50 ${fmt(l.p50, 3)} ms, p99 ${fmt(l.p99, 3)} ms` +
            (kind === 'runs' ? `, end p50 ${fmt(r.latencyMs.end.p50, 3)} ms` : '') +
            `, errors ${r.errors}, gateway ${fmt(row.gateway.cpuMicrosPerOp, 0)} µs CPU/op (${fmt(cpu.gatewayPercent, 0)}%)`,
        )
      }
    }
    const memEnd = processMemory(gw.pid)
    const logLines = gatewayLogLines(gw)
    await gw.pool.destroy().catch(() => undefined)
    const exit = await stopChild(gw.child)
    if (logLines.length)
      warnings.push(`gateway logged ${logLines.length} lines at warn or above, e.g. ${logLines[0]}`)
    // Server-side timings of the measured runs, read after a clean shutdown.
    for (const row of results) {
      if (row.case !== 'runs') continue
      row.server = serverBreakdown(join(dataDir, 'gatehouse.db'), row.ids)
    }
    loadGateway = {
      rssBytesStart: memStart.rss,
      rssBytesEnd: memEnd.rss,
      vmHwmBytes: memEnd.hwm,
      exit: { code: exit.code, signal: exit.signal },
      logLinesAtWarnOrAbove: logLines.length,
      logSample: logLines.slice(0, 20),
    }
  }

  // Ratios against the baseline of the same run and concurrency.
  for (const row of results) {
    const base = results.find((b) => b.case === 'baseline' && b.concurrency === row.concurrency)
    if (!base || row.case === 'baseline') continue
    row.vsBaseline = {
      throughputRatio: row.perSec / base.perSec,
      firstEventP50InRoundTrips: row.latencyMs.firstEvent.p50 / base.latencyMs.request.p50,
      endP50InRoundTrips: row.latencyMs.end.p50 / base.latencyMs.request.p50,
    }
  }

  let recovery
  if (CASES.includes('recovery')) recovery = await recoveryCase(warnings)

  const report = {
    bench: 'runs',
    date: new Date().toISOString(),
    git: gitInfo(),
    node: process.version,
    cpu: cpus()[0]?.model,
    cpus: machineCpus,
    loadavg: loadAtStart,
    memoryBytes: totalmem(),
    pinning,
    agent: { name: AGENT, module: relative(ROOT, AGENT_MODULE), input: RUN_INPUT },
    gatewayConfig: GATEWAY_CONFIG ?? null,
    gatewayNodeArgs: argv['gateway-node-args'] ?? null,
    options: {
      duration: DURATION,
      warmup: WARMUP,
      concurrency: CONCURRENCY,
      cases: CASES,
      recovery: {
        rounds: ROUNDS,
        runs: RECOVERY_RUNS,
        steps: RECOVERY_STEPS,
        sleepMs: RECOVERY_SLEEP,
        killAfterMs: KILL_AFTER,
        pollMs: RECOVERY_POLL,
        pid1: argv['recovery-pid1'],
      },
    },
    targets: TARGETS,
    gateway: loadGateway,
    warnings,
    results: results.map(({ ids: _ids, ...rest }) => rest),
    recovery,
  }
  report.verdict = verdict(report)

  process.stdout.write(markdown(report))
  const out = argv.out
    ? resolve(argv.out)
    : join(BENCH_DIR, 'results', `runs-${report.date.replace(/[:.]/g, '-')}.json`)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
  process.stdout.write(`\nJSON: ${relative(process.cwd(), out) || out}\n`)
}

/** The targets of the issue and of the SPEC against this run's numbers. */
function verdict(report) {
  const out = []
  const runs1 = report.results.find((r) => r.case === 'runs' && r.concurrency === 1)
  const runsMax = report.results
    .filter((r) => r.case === 'runs')
    .sort((a, b) => b.concurrency - a.concurrency)[0]
  if (runs1) {
    const v = runs1.latencyMs.firstEvent.p50
    out.push({
      what: 'first event p50, concurrency 1',
      value: v,
      unit: 'ms',
      target: `< ${TARGETS.issue.firstEventP50Ms} (issue)`,
      met: v < TARGETS.issue.firstEventP50Ms,
    })
    out.push({
      what: 'first event p50, concurrency 1',
      value: v,
      unit: 'ms',
      target: `≤ ${TARGETS.spec.firstEventP50Ms} (SPEC)`,
      met: v <= TARGETS.spec.firstEventP50Ms,
    })
  }
  if (runsMax && runsMax !== runs1) {
    const v = runsMax.latencyMs.firstEvent.p50
    out.push({
      what: `first event p50, concurrency ${runsMax.concurrency}`,
      value: v,
      unit: 'ms',
      target: `< ${TARGETS.issue.firstEventP50Ms} (issue)`,
      met: v < TARGETS.issue.firstEventP50Ms,
    })
  }
  if (runsMax) {
    const v = runsMax.perSec
    out.push({
      what: `runs/s, concurrency ${runsMax.concurrency}`,
      value: v,
      unit: 'runs/s',
      target: `≥ ${TARGETS.spec.runsPerSec} (SPEC)`,
      met: v >= TARGETS.spec.runsPerSec,
    })
  }
  const rec = report.recovery?.overall
  if (rec?.killToClaimedMs?.count) {
    const v = rec.killToClaimedMs.max
    out.push({
      what: 'recovery, SIGKILL → run running again (max)',
      value: v,
      unit: 'ms',
      target: `< ${TARGETS.issue.recoveryMs} (issue)`,
      met: v < TARGETS.issue.recoveryMs,
    })
    const r = rec.readyToClaimedMs.max
    out.push({
      what: 'resume after restart, ready → run running again (max)',
      value: r,
      unit: 'ms',
      target: `≤ ${TARGETS.spec.resumeAfterRestartMs} (SPEC)`,
      met: r <= TARGETS.spec.resumeAfterRestartMs,
    })
    const p = rec.killToNextProgressMs.max
    out.push({
      what: 'SIGKILL → next progress event (max; includes re-running the step in flight)',
      value: p,
      unit: 'ms',
      target: `< ${TARGETS.issue.recoveryMs} (issue, stricter reading)`,
      met: p < TARGETS.issue.recoveryMs,
    })
  }
  return out
}

const fmt = (n, digits) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–'
const mb = (b) => fmt(b / 2 ** 20, 1)

function markdown(report) {
  const lines = []
  const o = report.options
  lines.push(`## Durable runs (${report.date})`)
  lines.push('')
  lines.push(
    `node ${report.node}, ${report.cpus} CPUs (${report.cpu}), load average ${report.loadavg.map((l) => l.toFixed(2)).join(' ')} at start; ` +
      `git ${report.git.commit}${report.git.srcDirty ? ' (src/ modified)' : ''}; agent ${report.agent.module}; ` +
      `${o.duration}s per case after ${o.warmup}s warm-up; pinning ${report.pinning.pin ? 'on' : 'off'} (${report.pinning.why})` +
      (report.gatewayConfig ? `; gateway --config ${report.gatewayConfig}` : '') +
      '.',
  )
  if (report.results.length) {
    lines.push('')
    lines.push(
      '| conc | case | /s | × baseline | p50 ms | p99 ms | first event p50 ÷ GET p50 | first SSE event p50 ms | POST p50 ms | end p50 ms | end p99 ms | errors | gw CPU µs/op | gw CPU % | gw main thread % | gw runq wait % | lg CPU % | other load % |',
    )
    lines.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const r of report.results) {
      const isRuns = r.case === 'runs'
      const l = isRuns ? r.latencyMs.firstEvent : r.latencyMs.request
      lines.push(
        `| ${[
          r.concurrency,
          isRuns ? 'runs (first event)' : 'baseline GET /v1/runs/{id}',
          fmt(r.perSec, 0),
          isRuns ? fmt(r.vsBaseline?.throughputRatio, 3) : '1.00',
          fmt(l.p50, 3),
          fmt(l.p99, 3),
          isRuns ? fmt(r.vsBaseline?.firstEventP50InRoundTrips, 1) : '–',
          isRuns ? fmt(r.latencyMs.firstSseEvent.p50, 3) : '–',
          isRuns ? fmt(r.latencyMs.create.p50, 3) : '–',
          isRuns ? fmt(r.latencyMs.end.p50, 3) : '–',
          isRuns ? fmt(r.latencyMs.end.p99, 3) : '–',
          r.errors,
          fmt(r.gateway.cpuMicrosPerOp, 0),
          fmt(r.gateway.cpuPercent, 0),
          fmt(r.gateway.mainThreadCpuPercent, 0),
          fmt(r.gateway.mainThreadRunqueueWaitPercent, 0),
          fmt(r.loadGenerator.cpuPercent, 0),
          fmt(r.machine.otherCpuPercent, 0),
        ].join(' | ')} |`,
      )
    }
    lines.push('')
    const serverRows = report.results.filter((r) => r.server)
    if (serverRows.length) {
      lines.push('Server side, from the store timestamps (ms resolution), p50 / p99 / max ms:')
      lines.push('')
      lines.push(
        '| conc | created → claimed | claimed → first agent event | first agent event → end | created → end |',
      )
      lines.push('|---:|---:|---:|---:|---:|')
      const c = (x) => (x?.count ? `${x.p50} / ${x.p99} / ${x.max}` : '–')
      for (const r of serverRows)
        lines.push(
          `| ${r.concurrency} | ${c(r.server.createdToClaimedMs)} | ${c(r.server.claimedToTokenMs)} | ${c(r.server.tokenToEndMs)} | ${c(r.server.createdToEndMs)} |`,
        )
      lines.push('')
    }
    const gw = report.gateway
    if (gw)
      lines.push(
        `Gateway: RSS ${mb(gw.rssBytesStart)} MB at start, ${mb(gw.rssBytesEnd)} MB at end, peak (VmHWM) ${mb(gw.vmHwmBytes)} MB; ` +
          `exit after SIGTERM ${JSON.stringify(gw.exit)}; ${gw.logLinesAtWarnOrAbove} lines logged at warn or above.`,
      )
    lines.push('')
    lines.push(
      'p50/p99: baseline rows: the GET round trip; runs rows: POST sent → first agent event (`token`) read from the SSE stream. ' +
        '× baseline = runs/s ÷ baseline GET/s at the same concurrency in this run. first event ÷ GET p50: the first event in units ' +
        'of one REST round trip (a run needs at least two: the POST and the events GET). first SSE event = the first event of ' +
        'any kind (the replayed `status`). end = POST sent → `end` event. errors = failed requests + runs that did not end ' +
        '`succeeded` with their echo. gw CPU = gateway utime+stime (all threads) per verified op and in % of one core; gw main ' +
        'thread % = the event loop thread on CPU; gw runq wait % = that thread runnable but waiting for a CPU (starved by ' +
        'other processes); 100 − both ≈ the event loop idle or blocked in a system call; lg = this process; ' +
        'other load = CPU used outside the bench, in % of one core (noise).',
    )
  }
  const rec = report.recovery
  if (rec) {
    lines.push('')
    lines.push(
      `### Recovery: ${o.recovery.runs} runs × ${o.recovery.steps} steps × ${o.recovery.sleepMs} ms, SIGKILL after ${o.recovery.killAfterMs} ms, restart at once` +
        `${o.recovery.pid1 ? ', each gateway PID 1 of its own PID namespace (as in a container)' : ''} (ms)`,
    )
    lines.push('')
    lines.push(
      '| round | kill → exit | spawn → ready | kill → ready | kill → claimed p50 / max | ready → claimed p50 / max | kill → seen running (poll) p50 / max | kill → next progress p50 / max | succeeded | steps re-run | lost / duplicated steps | new gw CPU ms | other load % |',
    )
    lines.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    const pm = (s) => (s?.count ? `${fmt(s.p50, 0)} / ${fmt(s.max, 0)}` : '–')
    for (const r of rec.rounds)
      lines.push(
        `| ${[
          r.round,
          fmt(r.killToExitMs, 1),
          fmt(r.spawnToReadyMs, 0),
          fmt(r.killToReadyMs, 0),
          pm(r.killToClaimedMs),
          pm(r.readyToClaimedMs),
          pm(r.killToSeenRunningMs),
          pm(r.killToNextProgressMs),
          `${r.succeeded}/${r.runs}`,
          r.steps.reexecuted,
          `${r.steps.missing} / ${r.steps.duplicated}`,
          fmt(r.newGatewayCpuMs, 0),
          fmt(r.otherCpuPercent, 0),
        ].join(' | ')} |`,
      )
    const a = rec.overall
    lines.push(
      `| all | | ${pm(a.spawnToReadyMs)} | ${pm(a.killToReadyMs)} | ${pm(a.killToClaimedMs)} | ${pm(a.readyToClaimedMs)} | ${pm(a.killToSeenRunningMs)} | ${pm(a.killToNextProgressMs)} | | | | | |`,
    )
    lines.push('')
    lines.push(
      "claimed = the run's `updated_at` once it shows attempts 2 (the claim is the only write that sets it while a run is running), " +
        'so it has ms resolution and no poll delay; ready → claimed is negative when the claim landed before the ready line was read. ' +
        `seen running = when the ${o.recovery.pollMs} ms poll of GET /v1/runs/{id} first saw attempts 2. next progress = the first \`progress\` ` +
        'event written after the kill (store timestamp): it includes re-running the step that was in flight. steps re-run = step ' +
        'executions with attempt 2 (at most one per run is expected); lost / duplicated must be 0. new gw CPU = CPU the ' +
        'restarted gateway used from its spawn until every run was seen running (its boot, mostly); other load = CPU used ' +
        'outside the bench and that gateway over the same window, in % of one core (noise).',
    )
  }
  if (report.verdict.length) {
    lines.push('')
    lines.push('### Targets')
    lines.push('')
    lines.push('| measure | value | target | met |')
    lines.push('|---|---:|---|---|')
    for (const v of report.verdict)
      lines.push(
        `| ${v.what} | ${fmt(v.value, v.unit === 'ms' && v.value < 100 ? 2 : 0)} ${v.unit} | ${v.target} | ${v.met ? 'yes' : '**no**'} |`,
      )
  }
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
