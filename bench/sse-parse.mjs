#!/usr/bin/env node
// The upstream SSE parser (src/upstream/sse.ts) on one large event fed in 64 KiB chunks, as a
// big tools/call or resources/read result streamed by an SDK server arrives. Prints the time per
// MB at each size: flat means linear. (The hand-written parser this replaced rescanned its whole
// buffer for every chunk: 13.6 ms for 1 MB, 163 ms for 4 MB.)
//
//   npm run build && node bench/sse-parse.mjs [--sizes 1,4,16] [--rounds 5]
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { SseParser } from '../dist/src/upstream/sse.js'

const { values: o } = parseArgs({
  options: { sizes: { type: 'string', default: '1,4,16' }, rounds: { type: 'string', default: '5' } },
})
const chunk = 'x'.repeat(64 * 1024)
const rows = []
for (const mb of o.sizes.split(',').map(Number)) {
  const times = []
  for (let r = 0; r < Number(o.rounds); r++) {
    const p = new SseParser(64 * 1024 * 1024)
    const t = performance.now()
    p.push('data: ')
    for (let i = 0; i < mb * 16; i++) p.push(chunk)
    const [ev] = p.push('\n\n')
    times.push(performance.now() - t)
    if (ev?.data.length !== mb * 1024 * 1024) throw new Error(`lost data at ${mb} MB`)
  }
  const best = Math.min(...times)
  rows.push({ mb, best, perMb: best / mb })
}
const base = rows[0].perMb
for (const r of rows)
  console.log(
    `${String(r.mb).padStart(4)} MB: ${r.best.toFixed(1).padStart(7)} ms (best of ${o.rounds}), ` +
      `${r.perMb.toFixed(2)} ms/MB, ${(r.perMb / base).toFixed(2)}× the smallest size's ms/MB`,
  )
