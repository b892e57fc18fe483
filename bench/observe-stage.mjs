#!/usr/bin/env node
// The observe stage of the call pipeline alone (trace ids, metrics, the call log's record, its
// batches, the hand-off to the telemetry writer thread and that thread's decoding and SQLite
// inserts) on the real SQLite store: CPU per call by thread, read from /proc. No HTTP, no
// upstream: `next()` answers at once.
//
//   npm run build && taskset -c 0 node bench/observe-stage.mjs [calls] [--no-redact]
//
// Run it pinned to one CPU, as the gateway is in bench/tools-call.mjs, so that the writer thread's
// work is counted on the same core as the calls that cause it.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { CLK_TCK } from './lib/proc.mjs'

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src')
const { openSqliteStore } = await import(`${DIST}/store/sqlite/index.js`)
const { Telemetry } = await import(`${DIST}/telemetry/tracing.js`)
const { Metrics } = await import(`${DIST}/telemetry/metrics.js`)
const { CallLog } = await import(`${DIST}/telemetry/call-log.js`)
const { observeStage } = await import(`${DIST}/pipeline/stages.js`)
const { Redactor } = await import(`${DIST}/policy/redact.js`)
const { createContext } = await import(`${DIST}/context.js`)
const { createLogger } = await import(`${DIST}/log.js`)

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 200_000)
const logger = createLogger('warn')
const dir = mkdtempSync(join(tmpdir(), 'gh-observe-'))
const store = openSqliteStore({ path: join(dir, 'gatehouse.db') })
// As the gateway sets it up (src/gateway.ts): memoized redaction, request ids without the memo.
const redactor = new Redactor({ mode: 'hash', hashKey: 'bench' })
const scrub = process.argv.includes('--no-redact') ? undefined : redactor.memoized()
const telemetry = new Telemetry({ spans: store.spans, logger, ...(scrub ? { redact: scrub } : {}) })
const calls = new CallLog({
  store: store.calls,
  logger,
  ...(scrub ? { redact: scrub, redactOnce: (s) => redactor.string(s) } : {}),
})
const stage = observeStage({ telemetry, metrics: new Metrics(), calls })
const ctx = createContext({
  tenant: 'default',
  principal: { kind: 'service', id: 'k_8f2a1c9e0b7d4e6f', name: 'admin' },
  roles: ['admin'],
})
const tool = { exposed: 'up__echo', name: 'echo', connection: { name: 'up', tenant: 'default' } }
const result = { content: [{ type: 'text', text: 'hello' }] }
const next = async () => result

async function run(n) {
  for (let i = 0; i < n; i++)
    await stage({ ctx, tool, args: { text: 'hello' }, extra: {}, headers: {} }, next)
  await calls.flush()
}

/** utime+stime per thread, in µs. */
function threads() {
  const out = new Map()
  for (const t of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${t}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const name = t === String(process.pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    out.set(t, { name, us: ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK })
  }
  return out
}

await run(Math.min(20_000, N))
const before = threads()
const cpu0 = process.cpuUsage()
await run(N)
const cpu = process.cpuUsage(cpu0)
const by = []
for (const [t, a] of threads()) {
  const d = a.us - (before.get(t)?.us ?? 0)
  if (d > 0) by.push(`${a.name}:${(d / N).toFixed(1)}`)
}
console.log(
  `observe stage, ${N} calls${scrub ? '' : ' (no redaction)'}: ${((cpu.user + cpu.system) / N).toFixed(2)} µs CPU per call, all threads; by thread ${by.join(' ')}`,
)
await calls.close()
await telemetry.close()
await store.close()
// What the run wrote (warm-up included): a check that every call left its rows.
const db = new Database(join(dir, 'gatehouse.db'), { readonly: true })
const count = (t) => db.prepare(`SELECT count(*) AS n FROM ${t}`).get().n
console.log(`rows written: ${count('audit_events')} audit rows, ${count('spans')} spans`)
db.close()
rmSync(dir, { recursive: true, force: true })
