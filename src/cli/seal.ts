import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { GatewayError } from '../errors.js'
import { loadMasterKey } from '../vault/master-key.js'
import { seal } from '../vault/seal.js'
import { one, parseArgs } from './args.js'

/** `gatehouse seal`: encrypts a secret with this gateway's master key for use in manifests. */
export async function runSeal(argv: string[]): Promise<number> {
  const args = parseArgs(argv, { command: 'seal', values: ['data', 'value'] })
  const dataDir = resolve(one(args, 'data') ?? process.env.GATEHOUSE_DATA ?? './.gatehouse')
  let value = one(args, 'value')
  if (value === undefined) {
    if (process.stdin.isTTY)
      throw new GatewayError(
        'bad_request',
        'pipe the secret on stdin, e.g. `printf %s "$TOKEN" | gatehouse seal`',
      )
    value = readFileSync(0, 'utf8').replace(/\r?\n$/, '')
  }
  if (!value) throw new GatewayError('bad_request', 'nothing to seal: the value is empty')
  process.stdout.write(`{ sealed: "${seal(loadMasterKey(dataDir), value)}" }\n`)
  return 0
}
