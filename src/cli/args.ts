import { GatewayError } from '../errors.js'

export interface ParsedArgs {
  positionals: string[]
  flags: Map<string, string[]>
}

/** The flags one command takes: names that need a value, and names that are switches. */
export interface FlagSpec {
  command: string
  values: readonly string[]
  switches?: readonly string[]
}

const ALIASES: Record<string, string> = { f: 'file', h: 'help' }

/**
 * `--name value`, `--name=value`, repeated flags, `-f` for `--file`. A flag the command does not
 * take is refused by name before anything else is looked at, so the error names the real mistake.
 */
export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const positionals: string[] = []
  const flags = new Map<string, string[]>()
  const push = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v])
  const switches = new Set([...(spec.switches ?? []), 'help'])
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (!(a.startsWith('--') || (a.startsWith('-') && a.length === 2))) {
      positionals.push(a)
      continue
    }
    const raw = a.replace(/^--?/, '')
    const eq = raw.indexOf('=')
    const name = ALIASES[eq === -1 ? raw : raw.slice(0, eq)] ?? (eq === -1 ? raw : raw.slice(0, eq))
    if (!spec.values.includes(name) && !switches.has(name)) {
      throw new GatewayError(
        'bad_request',
        `unknown option --${name} for \`gatehouse ${spec.command}\`; see \`gatehouse help\``,
      )
    }
    if (eq !== -1) push(name, raw.slice(eq + 1))
    else if (switches.has(name)) push(name, 'true')
    else {
      const v = argv[i + 1]
      if (v === undefined || (v.startsWith('-') && v.length > 1))
        throw new GatewayError('bad_request', `--${name} needs a value`)
      push(name, v)
      i++
    }
  }
  return { positionals, flags }
}

export function one(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name)
  return v?.[v.length - 1]
}

export function all(args: ParsedArgs, name: string): string[] {
  return args.flags.get(name) ?? []
}
