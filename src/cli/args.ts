import { GatewayError } from '../errors.js'

export interface ParsedArgs {
  positionals: string[]
  flags: Map<string, string[]>
}

/**
 * `--name value`, `--name=value` and repeated flags; `-f` is `--file`. Boolean flags are named
 * in `booleans` so that they do not swallow the next argument.
 */
export function parseArgs(argv: string[], booleans: ReadonlySet<string> = new Set()): ParsedArgs {
  const positionals: string[] = []
  const flags = new Map<string, string[]>()
  const push = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v])
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (a.startsWith('--') || (a.startsWith('-') && a.length === 2)) {
      let name = a.startsWith('--') ? a.slice(2) : a.slice(1)
      if (name === 'f') name = 'file'
      if (name === 'h') name = 'help'
      const eq = name.indexOf('=')
      if (eq !== -1) {
        push(name.slice(0, eq), name.slice(eq + 1))
      } else if (booleans.has(name)) {
        push(name, 'true')
      } else {
        const v = argv[i + 1]
        if (v === undefined || (v.startsWith('--') && v.length > 2))
          throw new GatewayError('bad_request', `--${name} needs a value`)
        push(name, v)
        i++
      }
    } else {
      positionals.push(a)
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

export function rejectUnknown(args: ParsedArgs, known: readonly string[], command: string): void {
  for (const k of args.flags.keys()) {
    if (!known.includes(k))
      throw new GatewayError(
        'bad_request',
        `unknown option --${k} for \`gatehouse ${command}\`; see \`gatehouse help\``,
      )
  }
}
