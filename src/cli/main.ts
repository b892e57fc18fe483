import { GatewayError } from '../errors.js'
import { runApply } from './apply.js'
import { runKeys } from './keys.js'
import { runSeal } from './seal.js'
import { runStart } from './start.js'

const HELP = `gatehouse — the production runtime for AI agents

Usage:
  gatehouse start [--host 127.0.0.1] [--port 7420] [--data DIR] [--manifests DIR_OR_FILE]... [--config FILE]
  gatehouse apply -f FILE_OR_DIR [-f ...] [--url URL] [--key KEY] [--dry-run]
  gatehouse seal [--data DIR] [--value VALUE]      (reads the value from stdin when --value is absent)
  gatehouse keys create --role ROLE [--tenant T] [--name N] [--expires-in SECONDS] [--scopes "a b"] [--url URL] [--key KEY]
  gatehouse keys list [--tenant T] [--url URL] [--key KEY]
  gatehouse keys revoke ID [--tenant T] [--url URL] [--key KEY]
  gatehouse keys rotate-master [--data DIR] [--new-key]
                                   (re-wraps stored connection tokens and OAuth client secrets under the
                                    primary master key, on the store itself; --new-key first replaces
                                    DATA/master.key and keeps the old key in DATA/master.keys.previous)

Environment: GATEHOUSE_ADMIN_KEY, GATEHOUSE_URL, GATEHOUSE_KEY, GATEHOUSE_DATABASE_URL, GATEHOUSE_MASTER_KEY,
GATEHOUSE_MASTER_KEYS_PREVIOUS (comma-separated base64 keys still accepted for reading).
`

/** CLI entry: returns the exit code; errors are one line on stderr naming the problem and the fix. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(HELP)
      return 0
    }
    switch (command) {
      case 'start':
        return await runStart(rest)
      case 'apply':
        return await runApply(rest)
      case 'seal':
        return await runSeal(rest)
      case 'keys':
        return await runKeys(rest)
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP)
        return 0
      default:
        throw new GatewayError('bad_request', `unknown command "${command}"; run \`gatehouse help\``)
    }
  } catch (err) {
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.message : String(err)}\n`)
    return err instanceof GatewayError && (err.code === 'bad_request' || err.code === 'invalid_manifest')
      ? 2
      : 1
  }
}
