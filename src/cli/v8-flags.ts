import { setFlagsFromString } from 'node:v8'

/**
 * V8 flags the `gatehouse` launcher sets for its own process before it loads anything else.
 *
 * `--no-allocation-site-pretenuring`: V8 tracks, per object or array literal in the code, how
 * many of the objects it makes survive a young-generation collection, and above 85 % starts
 * making them in the old generation directly. A request-serving process is the case that
 * heuristic misjudges: at a scavenge, every request in flight is alive, and whatever it made
 * counts as "surviving". Old objects that die young then point at young ones, which the
 * scavenger must keep and in turn promote. Measured under load (`bench/README.md`, "Where the
 * promoted garbage came from"), turning it off cuts the bytes promoted per MB allocated ~6×
 * (10 KB → 1.5 KB),
 * the GC helper threads' time in half, and the gateway's peak RSS from ~255 to ~188 MB.
 *
 * Each flag is left alone when the user chose it already (on the node command line or in
 * `NODE_OPTIONS`), either way.
 */
export const LAUNCHER_V8_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring']

/** The flag's name as the user may spell it: `--[no-]allocation[-_]site[-_]pretenuring`. */
function nameOf(flag: string): string {
  return flag
    .replace(/=.*$/, '')
    .replace(/_/g, '-')
    .replace(/^--(no-?)?/, '')
}

/** Those of `LAUNCHER_V8_FLAGS` the user has not set (in `execArgv` or `NODE_OPTIONS`). */
export function launcherV8Flags(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = new Set(
    [...execArgv, ...nodeOptions.split(/\s+/)].filter((a) => a.startsWith('--')).map(nameOf),
  )
  return LAUNCHER_V8_FLAGS.filter((f) => !given.has(nameOf(f)))
}

/** Sets the launcher's V8 flags on this process; returns those it set. */
export function applyLauncherV8Flags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string[] {
  const flags = launcherV8Flags(execArgv, nodeOptions)
  for (const f of flags) setFlagsFromString(f)
  return flags
}
