import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../src/errors.js'
import { loadMasterKey, masterKeyFrom, type MasterKey } from '../../src/vault/master-key.js'
import { MANIFEST_SECRET_AAD, seal, unseal } from '../../src/vault/seal.js'
import { SecretResolver } from '../../src/vault/secrets.js'

const PLAINTEXT = 'sk-live-4242-very-secret-token'
const key = (): MasterKey => masterKeyFrom(randomBytes(32))

/** Runs fn, expects a GatewayError, and returns it. */
function errorOf(fn: () => unknown): GatewayError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError)
    return err as GatewayError
  }
  throw new Error('expected an error, got none')
}

/** Nothing about the error (message, details, cause, serialized body) contains the plaintext. */
function expectNoPlaintext(err: GatewayError, plaintext = PLAINTEXT): void {
  expect(err.message).not.toContain(plaintext)
  expect(JSON.stringify(err.toBody())).not.toContain(plaintext)
  expect(String(err.stack)).not.toContain(plaintext)
  expect(String((err as { cause?: unknown }).cause ?? '')).not.toContain(plaintext)
}

/** Decodes the body of a sealed value, lets `mutate` change it, and re-encodes it. */
function rewriteBody(sealed: string, mutate: (raw: Buffer) => Buffer): string {
  const [prefix, id, body] = sealed.split('.')
  return `${prefix}.${id}.${mutate(Buffer.from(body!, 'base64url')).toString('base64url')}`
}

const tmpDirs: string[] = []
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'gh-vault-'))
  tmpDirs.push(d)
  return d
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true })
})

describe('seal / unseal', () => {
  it('round-trips, including unicode and the empty string', () => {
    const k = key()
    for (const v of [PLAINTEXT, 'päss wörd ✓ 🔑', '', 'x'.repeat(10_000)]) {
      expect(unseal(k, seal(k, v))).toBe(v)
    }
  })

  it('has the gh1.<keyId>.<base64url> shape and never contains the plaintext', () => {
    const k = key()
    const s = seal(k, PLAINTEXT)
    expect(s).toMatch(/^gh1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$/)
    expect(s.split('.')[1]).toBe(k.id)
    expect(s).not.toContain(PLAINTEXT)
    expect(Buffer.from(s.split('.')[2]!, 'base64url').toString('latin1')).not.toContain(PLAINTEXT)
  })

  it('two seals of the same value differ (random IV) and both unseal', () => {
    const k = key()
    const a = seal(k, PLAINTEXT)
    const b = seal(k, PLAINTEXT)
    expect(a).not.toBe(b)
    const ivA = Buffer.from(a.split('.')[2]!, 'base64url').subarray(0, 12)
    const ivB = Buffer.from(b.split('.')[2]!, 'base64url').subarray(0, 12)
    expect(ivA.equals(ivB)).toBe(false)
    expect(unseal(k, a)).toBe(PLAINTEXT)
    expect(unseal(k, b)).toBe(PLAINTEXT)
  })

  it('unseals with the matching key from a key ring (rotation)', () => {
    const old = key()
    const current = key()
    const s = seal(old, PLAINTEXT)
    expect(unseal([current, old], s)).toBe(PLAINTEXT)
  })

  it('a tampered ciphertext fails authentication without revealing the plaintext', () => {
    const k = key()
    const s = seal(k, PLAINTEXT)
    // flip one bit in the ciphertext, in the IV, and in the tag: each must be detected
    for (const at of [12 + 3, 0, -1]) {
      const tampered = rewriteBody(s, (raw) => {
        const copy = Buffer.from(raw)
        const i = at < 0 ? copy.length + at : at
        copy[i] = copy[i]! ^ 0x01
        return copy
      })
      expect(tampered).not.toBe(s)
      const err = errorOf(() => unseal(k, tampered))
      expect(err.code).toBe('bad_request')
      expect(err.message).toMatch(/failed authentication/)
      expectNoPlaintext(err)
    }
  })

  it('a truncated value is refused clearly', () => {
    const k = key()
    const s = seal(k, PLAINTEXT)
    // shorter than iv + tag
    const short = rewriteBody(s, (raw) => raw.subarray(0, 20))
    const e1 = errorOf(() => unseal(k, short))
    expect(e1.message).toMatch(/truncated/)
    expectNoPlaintext(e1)
    // long enough to parse but missing its tail (the tag no longer matches)
    const cut = rewriteBody(s, (raw) => raw.subarray(0, raw.length - 4))
    const e2 = errorOf(() => unseal(k, cut))
    expect(e2.message).toMatch(/failed authentication/)
    expectNoPlaintext(e2)
    // body missing entirely
    const e3 = errorOf(() => unseal(k, `gh1.${k.id}.`))
    expect(e3.message).toMatch(/not a sealed value/)
  })

  it('a value sealed for another purpose (wrong AAD) does not unseal', () => {
    const k = key()
    const s = seal(k, PLAINTEXT, 'gatehouse/some-other-use')
    const err = errorOf(() => unseal(k, s))
    expect(err.message).toMatch(/failed authentication/)
    expect(err.message).toMatch(/another use/)
    expectNoPlaintext(err)
    const err2 = errorOf(() => unseal(k, seal(k, PLAINTEXT), 'gatehouse/some-other-use'))
    expect(err2.message).toMatch(/failed authentication/)
    expect(unseal(k, s, 'gatehouse/some-other-use')).toBe(PLAINTEXT)
    expect(MANIFEST_SECRET_AAD).toBe('gatehouse/manifest-secret')
  })

  it('an unknown key id names the key id, not the plaintext', () => {
    const a = key()
    const b = key()
    const s = seal(a, PLAINTEXT)
    const err = errorOf(() => unseal(b, s))
    expect(err.message).toContain(a.id)
    expect(err.message).toMatch(/does not have/)
    expectNoPlaintext(err)
    // the right id but the wrong key bytes (a forged id) still fails authentication
    const forged: MasterKey = { id: a.id, key: randomBytes(32) }
    const err2 = errorOf(() => unseal(forged, s))
    expect(err2.message).toMatch(/failed authentication/)
    expectNoPlaintext(err2)
  })

  it('a literal that is not gh1. is refused', () => {
    const k = key()
    for (const literal of [
      PLAINTEXT,
      'gh2.abcd1234.AAAA',
      '',
      'gh1',
      `GH1.${k.id}.abc`,
      `${PLAINTEXT}.x.y`,
    ]) {
      const err = errorOf(() => unseal(k, literal))
      expect(err.message).toMatch(/not a sealed value \(expected gh1\./)
      // the error does not echo the literal back (it may itself be a pasted secret)
      if (literal.length > 8) expect(err.message).not.toContain(literal)
    }
  })
})

describe('loadMasterKey', () => {
  it('creates DATA/master.key with mode 0600 and returns the same key on the next load', () => {
    const dir = join(tmp(), 'nested', 'data')
    const k1 = loadMasterKey(dir, {})
    const file = join(dir, 'master.key')
    expect(existsSync(file)).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(statSync(dir).mode & 0o077).toBe(0)
    expect(k1.key.length).toBe(32)
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').equals(k1.key)).toBe(true)
    const k2 = loadMasterKey(dir, {})
    expect(k2.id).toBe(k1.id)
    expect(k2.key.equals(k1.key)).toBe(true)
    // a value sealed with the first load unseals with the second
    expect(unseal(k2, seal(k1, PLAINTEXT))).toBe(PLAINTEXT)
  })

  it('refuses a key file readable by others (0644) and names chmod 600', () => {
    const dir = tmp()
    loadMasterKey(dir, {})
    const file = join(dir, 'master.key')
    chmodSync(file, 0o644)
    const err = errorOf(() => loadMasterKey(dir, {}))
    expect(err.message).toContain('chmod 600')
    expect(err.message).toContain(file)
    expect(err.message).toMatch(/644/)
    // the key material is not in the message
    expect(err.message).not.toContain(readFileSync(file, 'utf8').trim())
    // and it was not silently fixed
    expect(statSync(file).mode & 0o777).toBe(0o644)
    chmodSync(file, 0o600)
    expect(loadMasterKey(dir, {}).key.length).toBe(32)
  })

  it('refuses a group-readable key file too (0640)', () => {
    const dir = tmp()
    loadMasterKey(dir, {})
    chmodSync(join(dir, 'master.key'), 0o640)
    expect(errorOf(() => loadMasterKey(dir, {})).message).toContain('chmod 600')
  })

  it('refuses a key file that does not hold 32 bytes', () => {
    const dir = tmp()
    writeFileSync(join(dir, 'master.key'), randomBytes(16).toString('base64') + '\n', { mode: 0o600 })
    expect(errorOf(() => loadMasterKey(dir, {})).message).toMatch(/32 bytes/)
  })

  it('accepts GATEHOUSE_MASTER_KEY (base64 of 32 bytes) and writes no key file', () => {
    const dir = join(tmp(), 'data')
    const raw = randomBytes(32)
    const k = loadMasterKey(dir, { GATEHOUSE_MASTER_KEY: raw.toString('base64') })
    expect(k.key.equals(raw)).toBe(true)
    expect(k.id).toBe(masterKeyFrom(raw).id)
    expect(existsSync(join(dir, 'master.key'))).toBe(false)
    // the env key takes precedence over an existing file
    const dir2 = tmp()
    const fileKey = loadMasterKey(dir2, {})
    const envKey = loadMasterKey(dir2, { GATEHOUSE_MASTER_KEY: raw.toString('base64') })
    expect(envKey.id).not.toBe(fileKey.id)
    expect(envKey.key.equals(raw)).toBe(true)
  })

  it('rejects a GATEHOUSE_MASTER_KEY of the wrong length', () => {
    const dir = tmp()
    for (const bad of [
      randomBytes(16).toString('base64'),
      randomBytes(33).toString('base64'),
      'not base64 at all!',
    ]) {
      const err = errorOf(() => loadMasterKey(dir, { GATEHOUSE_MASTER_KEY: bad }))
      expect(err.message).toMatch(/32 bytes/)
      expect(err.message).not.toContain(bad)
    }
  })

  it('key ids are derived from the key: different keys, different ids; same key, same id', () => {
    const raw = randomBytes(32)
    expect(masterKeyFrom(raw).id).toBe(masterKeyFrom(Buffer.from(raw)).id)
    expect(masterKeyFrom(raw).id).not.toBe(masterKeyFrom(randomBytes(32)).id)
    expect(masterKeyFrom(raw).id).toMatch(/^[0-9a-f]{8}$/)
  })
})

describe('SecretResolver', () => {
  const k = key()

  it('resolves { env } from the given environment', () => {
    const r = new SecretResolver({ masterKeys: [k], env: { API_TOKEN: PLAINTEXT } })
    expect(r.resolve({ env: 'API_TOKEN' }, 'connector x headers.authorization')).toBe(PLAINTEXT)
  })

  it('resolves { sealed } with its master keys', () => {
    const r = new SecretResolver({ masterKeys: [key(), k], env: {} })
    expect(r.resolve({ sealed: seal(k, PLAINTEXT) }, 'connector x env.TOKEN')).toBe(PLAINTEXT)
  })

  it('a missing env var names the variable and where it is used, but no value', () => {
    const env = { OTHER_SECRET: PLAINTEXT, API_TOKEN_X: 'near-miss-value' }
    const r = new SecretResolver({ masterKeys: [k], env })
    const err = errorOf(() => r.resolve({ env: 'API_TOKEN' }, 'connector gh headers.authorization'))
    expect(err.code).toBe('unavailable')
    expect(err.message).toContain('API_TOKEN')
    expect(err.message).toContain('connector gh headers.authorization')
    expect(err.message).toMatch(/not set/)
    expectNoPlaintext(err)
    expect(err.message).not.toContain('near-miss-value')
    // an empty value counts as missing
    const err2 = errorOf(() =>
      new SecretResolver({ masterKeys: [k], env: { API_TOKEN: '' } }).resolve({ env: 'API_TOKEN' }, 'w'),
    )
    expect(err2.message).toContain('API_TOKEN')
  })

  it('a sealed value it cannot open names where, never the plaintext', () => {
    const r = new SecretResolver({ masterKeys: [key()], env: {} })
    const err = errorOf(() => r.resolve({ sealed: seal(k, PLAINTEXT) }, 'connector fx env.TOKEN'))
    expect(err.code).toBe('unavailable')
    expect(err.message).toContain('connector fx env.TOKEN')
    expect(err.message).toContain(k.id)
    expectNoPlaintext(err)
    const tampered = rewriteBody(seal(k, PLAINTEXT), (raw) => {
      const c = Buffer.from(raw)
      c[14] = c[14]! ^ 0xff
      return c
    })
    const err2 = errorOf(() =>
      new SecretResolver({ masterKeys: [k], env: {} }).resolve({ sealed: tampered }, 'w'),
    )
    expect(err2.message).toMatch(/failed authentication/)
    expectNoPlaintext(err2)
  })

  it('resolveMap passes literals through and resolves references, naming the failing key', () => {
    const r = new SecretResolver({ masterKeys: [k], env: { FROM_ENV: 'e-value' } })
    expect(
      r.resolveMap(
        { PLAIN: 'literal', A: { env: 'FROM_ENV' }, B: { sealed: seal(k, PLAINTEXT) } },
        'connector c env',
      ),
    ).toEqual({
      PLAIN: 'literal',
      A: 'e-value',
      B: PLAINTEXT,
    })
    expect(r.resolveMap(undefined, 'w')).toEqual({})
    const err = errorOf(() =>
      r.resolveMap(
        { A: { sealed: seal(k, PLAINTEXT) }, MISSING: { env: 'NOPE_NOT_SET' } },
        'connector c env',
      ),
    )
    expect(err.message).toContain('connector c env.MISSING')
    expect(err.message).toContain('NOPE_NOT_SET')
    expectNoPlaintext(err)
  })
})
