import { createHash, randomBytes } from 'node:crypto'
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs'
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

/** Previous master keys kept beside DATA/master.key: one base64 key per line, `#` comments, mode 0600. */
export const PREVIOUS_KEYS_FILE = 'master.keys.previous'

/**
 * Every master key this gateway accepts, primary first. The primary (what new values are sealed
 * and wrapped under) is `loadMasterKey`'s. Previous keys only unseal and unwrap what is still
 * under them, until `gatehouse keys rotate-master` has moved it: from GATEHOUSE_MASTER_KEYS_PREVIOUS
 * (comma-separated base64) and DATA/master.keys.previous. Duplicates and the primary are dropped.
 */
export function loadMasterKeys(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKey[] {
  const keys = [loadMasterKey(dataDir, env)]
  const add = (k: MasterKey) => {
    if (!keys.some((x) => x.id === k.id)) keys.push(k)
  }
  parseKeyList(env.GATEHOUSE_MASTER_KEYS_PREVIOUS ?? '', /,/, 'GATEHOUSE_MASTER_KEYS_PREVIOUS').forEach(add)
  const file = join(dataDir, PREVIOUS_KEYS_FILE)
  if (existsSync(file)) parseKeyList(readPrivate(file), /\r?\n/, file).forEach(add)
  return keys
}

/**
 * `gatehouse keys rotate-master --new-key`: a new DATA/master.key, the old one appended to
 * DATA/master.keys.previous first (so no crash in between can lose it). Refused when the primary
 * comes from GATEHOUSE_MASTER_KEY: the operator sets the new key there instead.
 */
export function rotateMasterKeyFile(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): { primary: MasterKey; previous: MasterKey } {
  if (env.GATEHOUSE_MASTER_KEY)
    throw new GatewayError(
      'bad_request',
      'the master key comes from GATEHOUSE_MASTER_KEY, so --new-key cannot replace it: set the new key in GATEHOUSE_MASTER_KEY, list the old one in GATEHOUSE_MASTER_KEYS_PREVIOUS, and run rotate-master without --new-key',
    )
  const previous = loadMasterKey(dataDir, env)
  const prevFile = join(dataDir, PREVIOUS_KEYS_FILE)
  if (existsSync(prevFile)) readPrivate(prevFile)
  const line = `# ${previous.id} retired ${new Date().toISOString()}\n${previous.key.toString('base64')}\n`
  appendFileSync(prevFile, line, { mode: 0o600 })
  chmodSync(prevFile, 0o600)
  const raw = randomBytes(32)
  const file = join(dataDir, 'master.key')
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, raw.toString('base64') + '\n', { mode: 0o600, flag: 'wx' })
  renameSync(tmp, file)
  return { primary: masterKeyFrom(raw), previous }
}

/** Reads a key file, refusing one that other users can read. */
function readPrivate(file: string): string {
  const mode = statSync(file).mode & 0o777
  if (mode & 0o077) {
    throw new GatewayError(
      'bad_request',
      `${file} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
    )
  }
  return readFileSync(file, 'utf8')
}

/** Base64 keys separated by `sep`; blanks and `#` lines skipped; a bad entry is named by position, never shown. */
function parseKeyList(text: string, sep: RegExp, where: string): MasterKey[] {
  const out: MasterKey[] = []
  text.split(sep).forEach((entry, i) => {
    const v = entry.trim()
    if (!v || v.startsWith('#')) return
    const raw = Buffer.from(v, 'base64')
    const bare = v.replace(/=+$/, '')
    const canonical = [raw.toString('base64').replace(/=+$/, ''), raw.toString('base64url')]
    if (raw.length !== 32 || !canonical.includes(bare))
      throw new GatewayError(
        'bad_request',
        `${where}: entry ${i + 1} is not a master key (base64 of 32 random bytes)`,
      )
    out.push(masterKeyFrom(raw))
  })
  return out
}
