import { configFromEnv, parseConfig, readConfigFile, type ConfigInput } from '../config.js'
import { GatewayError } from '../errors.js'
import { startGateway } from '../gateway.js'
import { all, one, parseArgs } from './args.js'

/** `gatehouse start`: runs until SIGTERM/SIGINT, then drains and exits 0. */
export async function runStart(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { command: 'start', values: ['host', 'port', 'data', 'manifests', 'config'] })
  const file = one(args, 'config')
  const flags: ConfigInput = {}
  if (one(args, 'host')) flags.host = one(args, 'host')!
  if (one(args, 'port') !== undefined) {
    const port = Number(one(args, 'port'))
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new GatewayError('bad_request', `--port must be 0–65535, got ${one(args, 'port')}`)
    flags.port = port
  }
  if (one(args, 'data')) flags.dataDir = one(args, 'data')!
  if (all(args, 'manifests').length) flags.manifests = all(args, 'manifests')
  const config = parseConfig({
    ...(file ? readConfigFile(file) : {}),
    ...configFromEnv(process.env),
    ...flags,
  })

  const gw = await startGateway({ config })
  if (gw.generatedAdminKey) {
    process.stdout.write(
      `gatehouse: generated admin key (shown once, also in ${gw.adminKeyFile}): ${gw.generatedAdminKey}\n`,
    )
  }
  process.stdout.write(`gatehouse listening on ${gw.url}\n`)

  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      gw.logger.info({ signal }, 'draining')
      gw.close().then(resolve, (err: unknown) => {
        gw.logger.error({ err }, 'shutdown failed')
        resolve()
      })
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  return 0
}
