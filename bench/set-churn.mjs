#!/usr/bin/env node
// Why per-call registrations on long-lived objects use Slots (src/slots.ts) and not a Set: a
// Set that gets an add and a delete per "call", with 64 calls in flight, against Slots doing the
// same. Each mode runs in its own process with --trace-gc-nvp for 3 s; printed: calls done and
// what the young-generation GC did per MB allocated (promoted bytes are what a Set's chain of
// rehashed tables drags into the old generation).
//
//   npm run build && node bench/set-churn.mjs [--seconds 3]
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: o, positionals } = parseArgs({
  options: { seconds: { type: 'string', default: '3' } },
  allowPositionals: true,
})
const [child] = positionals
if (child) {
  const { Slots } = await import('../dist/src/slots.js')
  const set = new Set()
  const slots = new Slots()
  const window = []
  // As in a server, the containers are old by the time calls come and go: allocate until two
  // scavenges have run, so the Set (and its table) or Slots (and its array) are promoted.
  for (let i = 0; i < 3; i++) {
    const junk = []
    for (let j = 0; j < 200_000; j++) junk.push({ j })
  }
  const end = Date.now() + Number(o.seconds) * 1000
  let n = 0
  while (Date.now() < end) {
    for (let k = 0; k < 1000; k++) {
      const call = { payload: new Array(64).fill(n), n: n++ }
      window.push(child === 'set' ? (set.add(call), call) : slots.add(call))
      if (window.length > 64) {
        const old = window.shift()
        if (child === 'set') set.delete(old)
        else slots.remove(old)
      }
    }
  }
  console.log(`CALLS ${n}`)
} else {
  const self = fileURLToPath(import.meta.url)
  const rows = {}
  for (const mode of ['set', 'slots']) {
    const r = spawnSync(process.execPath, ['--trace-gc-nvp', self, mode, '--seconds', o.seconds], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    })
    if (r.status !== 0) throw new Error(`${mode} run failed: ${r.stderr}`)
    const sum = { allocated: 0, promoted: 0, pause: 0 }
    for (const line of r.stdout.split('\n')) {
      if (!line.includes('gc=s ')) continue
      for (const k of Object.keys(sum)) sum[k] += Number(new RegExp(`\\b${k}=([\\d.]+)`).exec(line)?.[1] ?? 0)
    }
    const mb = sum.allocated / 1048576
    rows[mode] = {
      calls: Number(/CALLS (\d+)/.exec(r.stdout)[1]),
      promotedPerMb: sum.promoted / mb,
      pausePerMb: sum.pause / mb,
    }
    console.log(
      `${mode.padEnd(5)}: ${rows[mode].calls.toLocaleString('en')} calls in ${o.seconds} s; per MB allocated: ` +
        `${Math.round(rows[mode].promotedPerMb).toLocaleString('en')} B promoted, ${rows[mode].pausePerMb.toFixed(3)} ms scavenge pause`,
    )
  }
  console.log(
    `set / slots: ${(rows.set.promotedPerMb / rows.slots.promotedPerMb).toFixed(0)}× the promotion, ` +
      `${(rows.set.calls / rows.slots.calls).toFixed(2)}× the calls`,
  )
}
