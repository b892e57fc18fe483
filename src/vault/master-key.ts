import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GatewayError } from '../errors.js'

export interface MasterKey {
  /** Short public id, stored beside everything sealed with this key so rotation can find it. */
  id: string
  key: Buffer
}

export function masterKeyFrom(raw: Buffer): MasterKey {
  if (raw.length !== 32)
    throw new GatewayError('bad_request', 'the master key must be 32 bytes (base64 of 32 random bytes)')
  return { id: createHash('sha256').update(raw).digest('hex').slice(0, 8), key: raw }
}

/**
 * The master key comes from GATEHOUSE_MASTER_KEY (base64 of 32 bytes) or from DATA/master.key,
 * generated with mode 0600 on first start. A key file readable by others is refused.
 */
export function loadMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKey {
  const fromEnv = env.GATEHOUSE_MASTER_KEY
  if (fromEnv) return masterKeyFrom(Buffer.from(fromEnv, 'base64'))
  const file = join(dataDir, 'master.key')
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  }
  const mode = statSync(file).mode & 0o777
  if (mode & 0o077) {
    throw new GatewayError(
      'bad_request',
      `${file} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
    )
  }
  chmodSync(file, 0o600)
  return masterKeyFrom(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'))
}
