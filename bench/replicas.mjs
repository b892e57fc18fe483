#!/usr/bin/env node
// Replicas: tools/call/s and runs/s on SQLite, PostgreSQL with one replica, and PostgreSQL with
// two replicas, in one run on this machine (ratios against the SQLite setup of the same run).
//
//   node bench/replicas.mjs [--duration 8] [--connections 64] [--workers 32] [--setups sqlite,pg1,pg2]
//                           [--pg-fast] [--out FILE]
//
// Uses the built gateway (dist/: `npm run build` first), started as `gatehouse start` child
// processes; an echo MCP upstream (bench/lib/echo-upstream.mjs) as a child process; PostgreSQL
// started for the run (bench/lib/postgres.mjs: initdb + pg_ctl on loopback, fsync on unless
// --pg-fast), a fresh database per setup. Measurements, per setup:
//   tools/call/s  autocannon, 2026-07-28 stateless tools/call of up__echo (every body checked);
//                 with two replicas, two autocannon instances (half the connections each), summed
//   runs/s        `workers` loops of POST /v1/runs {agent: flex, mode: echo} + GET …/wait until
//                 succeeded; with two replicas each loop alternates replicas for create and wait
// Everything (load generators, gateways, upstream, PostgreSQL) shares this machine's cores: two
// replicas on one 2-core host measure contention, not scale-out. See bench/README.md ("Replicas").

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { startPostgres } from './lib/postgres.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const KEY = `gk_bench_${randomBytes(16).toString('hex')}`
const TEXT = `bench-${randomBytes(4).toString('hex')}`
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    workers: { type: 'string', default: '32' },
    setups: { type: 'string', default: 'sqlite,pg1,pg2' },
    'pg-fast': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const DURATION = Number(args.duration)
const CONNECTIONS = Number(args.connections)
const WORKERS = Number(args.workers)
const SETUPS = args.setups.split(',')
const children = new Set()

function startChild(cmd, argv, env, ready) {
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let out = ''
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${argv.join(' ')} did not start: ${out}`)), 30_000)
    const on = (d) => {
      out += d
      const m = ready.exec(out)
      if (m) {
        clearTimeout(t)
        res({ child, url: m[1] })
      }
    }
    child.stdout.on('data', on)
    child.stderr.on('data', (d) => (out += d))
    child.once('exit', (c) => rej(new Error(`exited ${c}: ${out}`)))
  })
}

const stop = (child) =>
  new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r()
    child.once('exit', r)
    child.kill('SIGTERM')
  })

process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

async function startGateway(dir, manifests, databaseUrl) {
  const data = mkdtempSync(join(dir, 'data-'))
  return startChild(
    process.execPath,
    [join(ROOT, 'bin/gatehouse.js'), 'start', '--port', '0', '--data', data, '--manifests', manifests],
    {
      GATEHOUSE_ADMIN_KEY: KEY,
      GATEHOUSE_LOG_LEVEL: 'warn',
      ...(databaseUrl ? { GATEHOUSE_DATABASE_URL: databaseUrl } : {}),
    },
    /gatehouse listening on (http:\/\/\S+)/,
  )
}

const MODERN_HEADERS = {
  authorization: `Bearer ${KEY}`,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'up__echo',
}
const CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'up__echo',
    arguments: { text: TEXT },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
})

function cannon(url, connections, duration) {
  return new Promise((res, rej) => {
    let bad = 0
    const inst = autocannon(
      {
        url: `${url}/mcp`,
        method: 'POST',
        headers: MODERN_HEADERS,
        body: CALL,
        connections,
        duration,
        setupClient: (client) =>
          client.on('body', (b) => {
            if (!b.toString().includes(`"text":"${TEXT}"`)) bad++
          }),
      },
      (err, r) =>
        err
          ? rej(err)
          : res({
              ok: r.requests.total - r.non2xx - bad,
              errors: r.non2xx + bad + r.errors,
              p50: r.latency.p50,
              p99: r.latency.p99,
            }),
    )
    inst.on('error', rej)
  })
}

async function toolCalls(urls, duration) {
  const per = Math.max(1, Math.floor(CONNECTIONS / urls.length))
  const rs = await Promise.all(urls.map((u) => cannon(u, per, duration)))
  return {
    perSec: rs.reduce((s, r) => s + r.ok, 0) / duration,
    errors: rs.reduce((s, r) => s + r.errors, 0),
    p50: Math.max(...rs.map((r) => r.p50)),
    p99: Math.max(...rs.map((r) => r.p99)),
  }
}

async function runsLoad(urls, seconds) {
  const h = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }
  const end = Date.now() + seconds * 1000
  let done = 0
  let errors = 0
  const lat = []
  const worker = async (w) => {
    for (let i = w; Date.now() < end; i++) {
      const t0 = performance.now()
      try {
        const c = await fetch(`${urls[i % urls.length]}/v1/runs`, {
          method: 'POST',
          headers: h,
          body: JSON.stringify({ agent: 'flex', input: { mode: 'echo', text: TEXT } }),
        })
        const run = await c.json()
        if (c.status !== 201) throw new Error(JSON.stringify(run))
        // With two replicas the wait goes to the other one: the end arrives there by NOTIFY.
        const w2 = await fetch(`${urls[(i + 1) % urls.length]}/v1/runs/${run.id}/wait?timeout=30`, {
          headers: h,
        })
        const fin = await w2.json()
        if (fin.status !== 'succeeded' || fin.output?.text !== TEXT) throw new Error(JSON.stringify(fin))
        done++
        lat.push(performance.now() - t0)
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
  lat.sort((a, b) => a - b)
  return {
    perSec: done / seconds,
    errors,
    p50: lat[Math.floor(lat.length / 2)] ?? 0,
    p99: lat[Math.floor(lat.length * 0.99)] ?? 0,
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'gh-bench-replicas-'))
  const up = await startChild(
    process.execPath,
    [join(ROOT, 'bench/lib/echo-upstream.mjs')],
    {},
    /echo upstream listening on (http:\/\/\S+)/,
  )
  const manifests = join(dir, 'manifests.yaml')
  writeFileSync(
    manifests,
    `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: up }
spec: { transport: http, url: "${up.url}" }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: flex }
spec: { type: code, module: "${join(ROOT, 'test/fixtures/agents/flex.mjs')}" }
`,
  )
  const pgServer = SETUPS.some((s) => s.startsWith('pg'))
    ? await startPostgres({ fast: args['pg-fast'] })
    : undefined
  const results = []
  for (const setup of SETUPS) {
    const dbUrl = setup === 'sqlite' ? undefined : await pgServer.createDatabase(`bench_${setup}`)
    const n = setup === 'pg2' ? 2 : 1
    const gws = []
    for (let i = 0; i < n; i++) gws.push(await startGateway(dir, manifests, dbUrl))
    const urls = gws.map((g) => g.url)
    await toolCalls(urls, 2) // warm-up
    const tools = await toolCalls(urls, DURATION)
    await runsLoad(urls, 2) // warm-up
    const runs = await runsLoad(urls, DURATION)
    results.push({ setup, replicas: n, tools, runs })
    console.error(`${setup}: ${tools.perSec.toFixed(0)} tools/call/s, ${runs.perSec.toFixed(0)} runs/s`)
    await Promise.all(gws.map((g) => stop(g.child)))
  }
  pgServer?.stop()
  await stop(up.child)
  rmSync(dir, { recursive: true, force: true })

  const base = results.find((r) => r.setup === 'sqlite')
  const label = { sqlite: 'SQLite, 1 process', pg1: 'PostgreSQL, 1 replica', pg2: 'PostgreSQL, 2 replicas' }
  const ratio = (v, b) => (b ? `${(v / b).toFixed(2)}×` : '–')
  const lines = [
    `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), availableParallelism ${availableParallelism()}, node ${process.version}; ` +
      `${DURATION} s per measurement; tools/call: ${CONNECTIONS} connections; runs: ${WORKERS} workers; PostgreSQL fsync ${args['pg-fast'] ? 'off' : 'on'}`,
    '',
    '| Setup | tools/call/s | vs SQLite | p50 / p99 ms | errors | runs/s | vs SQLite | p50 / p99 ms | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${label[r.setup] ?? r.setup} | ${r.tools.perSec.toFixed(0)} | ${ratio(r.tools.perSec, base?.tools.perSec)} | ${r.tools.p50} / ${r.tools.p99} | ${r.tools.errors} | ${r.runs.perSec.toFixed(1)} | ${ratio(r.runs.perSec, base?.runs.perSec)} | ${r.runs.p50.toFixed(0)} / ${r.runs.p99.toFixed(0)} | ${r.runs.errors} |`,
    ),
  ]
  const text = lines.join('\n')
  console.log(text)
  if (args.out) writeFileSync(args.out, JSON.stringify({ results, at: new Date().toISOString() }, null, 2))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
