import { performance } from 'node:perf_hooks'
/**
 * Linux /proc readings for benchmarks: per-process CPU time and memory, machine-wide busy time
 * (to estimate the load other processes put on a shared machine), and CPU pinning with taskset.
 * Every reading returns NaN where /proc is not available.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** utime + stime of a process (all its threads) in µs; clock-tick resolution (usually 10 ms). */
export function processCpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after "(comm) ": state is field 3, utime field 14, stime field 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
  } catch {
    return NaN
  }
}

/** Busy (user+nice+system+irq+softirq) and steal time of all CPUs together, in µs. */
export function machineCpuMicros() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    return {
      busy: ((f[0] + f[1] + f[2] + f[5] + f[6]) * 1e6) / CLK_TCK,
      steal: ((f[7] ?? 0) * 1e6) / CLK_TCK,
    }
  } catch {
    return { busy: NaN, steal: NaN }
  }
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
export function processMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
  } catch {
    return { rss: NaN, hwm: NaN }
  }
}

/**
 * Whether the bench can pin: taskset present and CPUs 0 and 1 usable. `disabled` is the
 * --no-pin flag; `onCpu1` says what shares CPU 1 (for the report). Returns { pin, why }.
 */
export function pinningPlan(disabled, onCpu1 = 'load generator (this process)') {
  if (disabled) return { pin: false, why: '--no-pin' }
  if (availableParallelism() < 2) return { pin: false, why: 'fewer than 2 CPUs available' }
  try {
    execFileSync('taskset', ['-c', '0,1', 'true'], { stdio: 'ignore' })
  } catch {
    return { pin: false, why: 'taskset not available or CPUs 0,1 not allowed' }
  }
  return { pin: true, why: `gateway on CPU 0; ${onCpu1} on CPU 1` }
}

/** Pins this process (all its threads) to one CPU. */
export function pinSelf(cpu) {
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' })
}

/** Main-thread scheduler stats of a process in µs: on CPU, and runnable but waiting for a CPU. */
export function mainThreadSched(pid) {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number)
    return { run: run / 1000, wait: wait / 1000 }
  } catch {
    return { run: NaN, wait: NaN }
  }
}

/**
 * Measures CPU over an interval: call `start()` before and `stop(seconds)` after; returns the
 * process's CPU (all threads), how long its main thread waited for a CPU while runnable
 * (starvation by other processes), this process's CPU, the CPU used by everything else on the
 * machine (noise) and the processes that used most of it; µs or % of one core.
 */
export function cpuMeter(pid) {
  let p0
  let s0
  let self0
  let m0
  let all0
  return {
    start() {
      p0 = processCpuMicros(pid)
      s0 = mainThreadSched(pid)
      self0 = process.cpuUsage()
      m0 = machineCpuMicros()
      all0 = allProcessesCpu()
    },
    stop(seconds) {
      const proc = processCpuMicros(pid) - p0
      const s1 = mainThreadSched(pid)
      const s = process.cpuUsage(self0)
      const self = s.user + s.system
      const m1 = machineCpuMicros()
      const other = Math.max(0, m1.busy - m0.busy - proc - self)
      const pct = (v) => (v / (seconds * 1e6)) * 100
      return {
        gatewayMicros: proc,
        gatewayPercent: pct(proc),
        mainThreadPercent: pct(s1.run - s0.run),
        mainThreadRunqueueWaitPercent: pct(s1.wait - s0.wait),
        benchPercent: pct(self),
        otherPercent: pct(other),
        stealPercent: pct(m1.steal - m0.steal),
        topOther: topProcesses(all0, allProcessesCpu(), seconds, [pid, process.pid]),
      }
    },
  }
}

/** CPU time (µs) of every process on the machine, by pid, with its name: for attributing noise. */
export function allProcessesCpu() {
  const out = new Map()
  let entries
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(name), { comm, micros: ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK })
    } catch {
      // exited meanwhile
    }
  }
  return out
}

/** The processes (besides `exclude` pids) that used the most CPU between two allProcessesCpu() snapshots. */
export function topProcesses(before, after, seconds, exclude = [], n = 3) {
  const rows = []
  for (const [pid, a] of after) {
    if (exclude.includes(pid)) continue
    const b = before.get(pid)
    const used = a.micros - (b && b.comm === a.comm ? b.micros : 0)
    if (used > 0) rows.push({ pid, comm: a.comm, cpuPercent: (used / (seconds * 1e6)) * 100 })
  }
  return rows.sort((x, y) => y.cpuPercent - x.cpuPercent).slice(0, n)
}

/* Child processes started by the benches: `benchName`, `output` (recent lines), `exited` (a promise) and `expectExit` are set by each bench's spawner. */

/** Resolves { value, at } once the child prints a line matching `re` on stdout (`at`: when it arrived). */
export function waitForLine(child, re, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(
      () =>
        done(new Error(`${child.benchName}: no ${re} within ${timeoutMs} ms\n${child.output.join('\n')}`)),
      timeoutMs,
    )
    const onData = (chunk) => {
      const at = performance.now()
      buf += chunk
      const m = re.exec(buf)
      if (m) done(null, { value: m[1], at })
    }
    const onExit = (code, signal) =>
      done(
        new Error(
          `${child.benchName} exited (code ${code}, signal ${signal}) before it was ready:\n${child.output.join('\n')}`,
        ),
      )
    function done(err, value) {
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(value)
    }
    child.stdout.on('data', onData)
    child.once('exit', onExit)
  })
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves with what `child.exited` resolves to. */
export async function stopChild(child, timeoutMs = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited
  child.expectExit = true
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const r = await child.exited
  clearTimeout(t)
  return r
}
