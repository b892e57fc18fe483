import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { GatewayError } from '../../src/errors.js'
import {
  connectionAad,
  decodeEnvelope,
  encodeEnvelope,
  localKeyProvider,
  oauthClientAad,
  openEnvelope,
  openString,
  rewrapEnvelope,
  rewrapString,
  sealEnvelope,
  sealString,
  type Envelope,
  type KeyProvider,
} from '../../src/vault/envelope.js'
import {
  loadMasterKey,
  loadMasterKeys,
  masterKeyFrom,
  PREVIOUS_KEYS_FILE,
  rotateMasterKeyFile,
  type MasterKey,
} from '../../src/vault/master-key.js'

const TOKENS = JSON.stringify({
  access_token: 'gho_live_access_4242',
  refresh_token: 'ghr_live_refresh_4242',
})
const key = (): MasterKey => masterKeyFrom(randomBytes(32))
const conn = { tenant: 'acme', userId: 'user:alice', connector: 'github', id: 'conn_1' }
const AAD = connectionAad(conn)

/** Awaits a rejection, expects a GatewayError, and checks it leaks neither plaintext nor key material. */
async function failure(p: Promise<unknown>, keys: readonly MasterKey[] = []): Promise<GatewayError> {
  const err = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(GatewayError)
  const ge = err as GatewayError
  const text = [ge.message, JSON.stringify(ge.toBody()), String(ge.stack), String(ge.cause ?? '')].join('\n')
  for (const secret of ['gho_live_access_4242', 'ghr_live_refresh_4242']) expect(text).not.toContain(secret)
  for (const k of keys) {
    expect(text).not.toContain(k.key.toString('base64'))
    expect(text).not.toContain(k.key.toString('hex'))
  }
  return ge
}

/** Flips one bit of a base64url string's decoded bytes. */
function flip(b64: string, at = -1): string {
  const raw = Buffer.from(b64, 'base64url')
  const i = at < 0 ? raw.length + at : at
  raw[i] = raw[i]! ^ 0x01
  return raw.toString('base64url')
}

describe('envelope: seal and open', () => {
  const a = key()
  const p = localKeyProvider([a])

  it('round trip; every seal uses a fresh data key and IV; nothing readable in the envelope', async () => {
    const e1 = await sealEnvelope(p, TOKENS, AAD)
    const e2 = await sealEnvelope(p, TOKENS, AAD)
    expect(e1.keyId).toBe(a.id)
    expect(await openEnvelope(p, e1, AAD)).toBe(TOKENS)
    expect(await openEnvelope(p, e2, AAD)).toBe(TOKENS)
    expect(e1.ciphertext).not.toBe(e2.ciphertext)
    expect(e1.wrappedKey).not.toBe(e2.wrappedKey)
    const all = JSON.stringify(e1)
    expect(all).not.toContain('gho_live')
    expect(Buffer.from(e1.ciphertext, 'base64url').toString('latin1')).not.toContain('gho_live')
    // iv ‖ ciphertext ‖ tag around a 32-byte data key
    expect(Buffer.from(e1.wrappedKey, 'base64url')).toHaveLength(12 + 32 + 16)
    expect(await openEnvelope(p, await sealEnvelope(p, '', AAD), AAD)).toBe('')
    const unicode = 'ключ 🔑 \u0000 end'
    expect(await openEnvelope(p, await sealEnvelope(p, unicode, AAD), AAD)).toBe(unicode)
  })

  it('a tampered ciphertext, wrapped key or key id fails with a clear error', async () => {
    const e = await sealEnvelope(p, TOKENS, AAD)
    const b = key()
    const cases: [string, Envelope, RegExp][] = [
      ['ciphertext tag', { ...e, ciphertext: flip(e.ciphertext) }, /payload failed authentication/],
      ['ciphertext body', { ...e, ciphertext: flip(e.ciphertext, 13) }, /payload failed authentication/],
      ['ciphertext iv', { ...e, ciphertext: flip(e.ciphertext, 0) }, /payload failed authentication/],
      ['ciphertext truncated', { ...e, ciphertext: e.ciphertext.slice(0, 20) }, /malformed/],
      ['ciphertext not base64url', { ...e, ciphertext: e.ciphertext + '!' }, /malformed/],
      ['wrapped key', { ...e, wrappedKey: flip(e.wrappedKey) }, /data key failed authentication/],
      ['wrapped key iv', { ...e, wrappedKey: flip(e.wrappedKey, 0) }, /data key failed authentication/],
      ['wrapped key garbage', { ...e, wrappedKey: 'not*base64' }, /data key failed authentication/],
      ['key id', { ...e, keyId: b.id }, /master key [0-9a-f]{8}, which this gateway does not have/],
      ['empty key id', { ...e, keyId: '' }, /malformed/],
    ]
    for (const [what, bad, message] of cases) {
      const err = await failure(openEnvelope(p, bad, AAD), [a, b])
      expect(err.message, what).toMatch(message)
    }
    // Swapping in another envelope's wrapped key (same master key) fails too.
    const other = await sealEnvelope(p, TOKENS, AAD)
    expect((await failure(openEnvelope(p, { ...e, wrappedKey: other.wrappedKey }, AAD))).message).toMatch(
      /payload failed authentication/,
    )
  })

  it('the AAD binds tenant, user, connector and id: an envelope copied to another record does not open', async () => {
    const e = await sealEnvelope(p, TOKENS, AAD)
    for (const other of [
      { ...conn, tenant: 'globex' },
      { ...conn, userId: 'user:bob' },
      { ...conn, connector: 'slack' },
      { ...conn, id: 'conn_2' },
    ]) {
      const err = await failure(openEnvelope(p, e, connectionAad(other)))
      expect(err.message).toMatch(/wrong AAD/)
      expect(err.code).toBe('internal')
    }
    // Parts cannot be shifted across the separator.
    expect(connectionAad({ tenant: 'a,b', userId: 'c', connector: 'd', id: 'e' })).not.toBe(
      connectionAad({ tenant: 'a', userId: 'b,c', connector: 'd', id: 'e' }),
    )
    expect(oauthClientAad({ tenant: 'acme', connector: 'github', issuer: 'x' })).not.toBe(AAD)
  })

  it('an unknown key id is `unavailable` and names where to add the key', async () => {
    const e = await sealEnvelope(localKeyProvider([key()]), TOKENS, AAD)
    const err = await failure(openEnvelope(p, e, AAD))
    expect(err.code).toBe('unavailable')
    expect(err.message).toMatch(/GATEHOUSE_MASTER_KEYS_PREVIOUS/)
    expect((await failure(rewrapEnvelope(p, e, AAD))).code).toBe('unavailable')
  })

  it('envelope strings round trip and refuse anything else', async () => {
    const s = await sealString(p, 'client-secret-xyz', AAD)
    expect(s).toMatch(/^ev1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    expect(await openString(p, s, AAD)).toBe('client-secret-xyz')
    const e = decodeEnvelope(s)
    expect(encodeEnvelope(e)).toBe(s)
    // Key ids and wrapped keys of any provider survive (dots, slashes, unicode).
    const odd = { keyId: 'arn:aws:kms:eu/1.2', wrappedKey: 'a.b/c+d=é', ciphertext: e.ciphertext }
    expect(decodeEnvelope(encodeEnvelope(odd))).toEqual(odd)
    for (const bad of ['client-secret-xyz', 'gh1.abcd.efgh', 'ev1.a.b', `${s}.x`, s.replace('ev1', 'ev2')])
      expect((await failure(openString(p, bad, AAD))).message).toMatch(/not a sealed envelope string/)
  })
})

describe('envelope: rewrap under the primary key', () => {
  it('re-wraps the data key only; the old key can go afterwards; already-primary is undefined', async () => {
    const oldKey = key()
    const newKey = key()
    const before = localKeyProvider([oldKey])
    const during = localKeyProvider([newKey, oldKey])
    const after = localKeyProvider([newKey])
    const e = await sealEnvelope(before, TOKENS, AAD)
    expect(await rewrapEnvelope(before, e, AAD)).toBeUndefined()
    const moved = await rewrapEnvelope(during, e, AAD)
    expect(moved).toMatchObject({ keyId: newKey.id, ciphertext: e.ciphertext })
    expect(moved!.wrappedKey).not.toBe(e.wrappedKey)
    expect(await openEnvelope(after, moved!, AAD)).toBe(TOKENS)
    expect(await rewrapEnvelope(during, moved!, AAD)).toBeUndefined()
    await failure(openEnvelope(after, e, AAD))
    // Rewrap checks the AAD of the wrapped key: it cannot re-bind an envelope to another record.
    await failure(rewrapEnvelope(during, e, connectionAad({ ...conn, id: 'conn_9' })))
    // Strings too.
    const s = await sealString(before, 'sec', AAD)
    const s2 = await rewrapString(during, s, AAD)
    expect(await openString(after, s2!, AAD)).toBe('sec')
    expect(await rewrapString(during, s2!, AAD)).toBeUndefined()
  })
})

/**
 * A stand-in for a cloud KMS, written against the KeyProvider interface only: its master keys
 * never leave it, its key ids are ARNs, and its "wrapped" blobs are its own format (a JSON
 * document holding the encryption context). If the vault works with this, the interface is enough.
 */
class FakeKms implements KeyProvider {
  private readonly keys = new Map<string, Buffer>()
  readonly calls: string[] = []
  primaryId: string

  constructor() {
    this.primaryId = this.createKey()
  }

  createKey(): string {
    const id = `arn:fake:kms:eu-west-1:000000000000:key/${randomUUID()}`
    this.keys.set(id, randomBytes(32))
    return id
  }

  rotate(): void {
    this.primaryId = this.createKey()
  }

  disable(id: string): void {
    this.keys.delete(id)
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId)
  }

  async wrap(dataKey: Buffer, aad: string): Promise<{ keyId: string; wrapped: string }> {
    this.calls.push('wrap')
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', this.keys.get(this.primaryId)!, iv)
    c.setAAD(createHash('sha256').update(aad).digest())
    const ct = Buffer.concat([c.update(dataKey), c.final()])
    const blob = { v: 1, ctx: createHash('sha256').update(aad).digest('hex'), iv: iv.toString('hex') }
    return {
      keyId: this.primaryId,
      wrapped: JSON.stringify({ ...blob, ct: ct.toString('hex'), tag: c.getAuthTag().toString('hex') }),
    }
  }

  async unwrap(keyId: string, wrapped: string, aad: string): Promise<Buffer> {
    this.calls.push('unwrap')
    const k = this.keys.get(keyId)
    if (!k) throw new GatewayError('unavailable', `KMS key ${keyId} is disabled or unknown`)
    const blob = JSON.parse(wrapped) as { iv: string; ct: string; tag: string; ctx: string }
    if (blob.ctx !== createHash('sha256').update(aad).digest('hex'))
      throw new GatewayError('internal', 'KMS: encryption context mismatch')
    const d = createDecipheriv('aes-256-gcm', k, Buffer.from(blob.iv, 'hex'))
    d.setAAD(createHash('sha256').update(aad).digest())
    d.setAuthTag(Buffer.from(blob.tag, 'hex'))
    return Buffer.concat([d.update(Buffer.from(blob.ct, 'hex')), d.final()])
  }
}

describe('envelope: a KMS-shaped provider (the interface is enough)', () => {
  it('seals, opens, refuses the wrong AAD, rewraps after a KMS key rotation, and round-trips as strings', async () => {
    const kms = new FakeKms()
    const e = await sealEnvelope(kms, TOKENS, AAD)
    expect(e.keyId).toBe(kms.primaryId)
    expect(await openEnvelope(kms, e, AAD)).toBe(TOKENS)
    await failure(openEnvelope(kms, e, connectionAad({ ...conn, userId: 'user:mallory' })))
    const first = kms.primaryId
    kms.rotate()
    expect(await openEnvelope(kms, e, AAD)).toBe(TOKENS)
    const moved = (await rewrapEnvelope(kms, e, AAD))!
    expect(moved.keyId).toBe(kms.primaryId)
    expect(moved.ciphertext).toBe(e.ciphertext)
    kms.disable(first)
    expect(await openEnvelope(kms, moved, AAD)).toBe(TOKENS)
    expect((await failure(openEnvelope(kms, e, AAD))).message).toMatch(/does not have/)
    const s = await sealString(kms, 'client-secret', AAD)
    expect(await openString(kms, s, AAD)).toBe('client-secret')
    expect(kms.calls).toContain('wrap')
    expect(kms.calls).toContain('unwrap')
  })

  it("a provider's own failure becomes an `unavailable` GatewayError naming the key, not the provider's message", async () => {
    const kms = new FakeKms()
    const e = await sealEnvelope(kms, TOKENS, AAD)
    const down: KeyProvider = {
      primaryId: kms.primaryId,
      has: (id) => kms.has(id),
      wrap: () => Promise.reject(new Error('connect ECONNREFUSED kms.internal token=abc')),
      unwrap: () => Promise.reject(new Error('connect ECONNREFUSED kms.internal token=abc')),
    }
    for (const p of [openEnvelope(down, e, AAD), sealEnvelope(down, TOKENS, AAD)]) {
      const err = await failure(p)
      expect(err.code).toBe('unavailable')
      expect(err.message).toMatch(
        /^the key provider could not (un)?wrap a data key \(master key arn:fake:kms/,
      )
      expect(err.message).not.toContain('token=abc')
    }
  })
})

describe('master keys: primary and previous', () => {
  const dirs: string[] = []
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'gh-keys-'))
    dirs.push(d)
    return d
  }
  const b64 = (k: MasterKey) => k.key.toString('base64')

  it('env primary plus previous keys from env and file, primary first, deduplicated', () => {
    const dir = tmp()
    const [p, x, y] = [key(), key(), key()]
    writeFileSync(join(dir, PREVIOUS_KEYS_FILE), `# retired\n${b64(y)}\n\n${b64(x)}\n`, { mode: 0o600 })
    const keys = loadMasterKeys(dir, {
      GATEHOUSE_MASTER_KEY: b64(p),
      GATEHOUSE_MASTER_KEYS_PREVIOUS: ` ${b64(x)} ,${x.key.toString('base64url')},${b64(p)}`,
    })
    expect(keys.map((k) => k.id)).toEqual([p.id, x.id, y.id])
    // Without previous keys: exactly the primary of loadMasterKey.
    const only = loadMasterKeys(tmp(), {})
    expect(only).toHaveLength(1)
    expect(only[0]!.id).toBe(loadMasterKey(dirs[dirs.length - 1]!, {}).id)
  })

  it('a bad previous key is named by position, never shown; a readable file is refused', () => {
    const dir = tmp()
    const secretish = Buffer.alloc(31, 7).toString('base64')
    const err = (() => {
      try {
        loadMasterKeys(dir, { GATEHOUSE_MASTER_KEYS_PREVIOUS: `${b64(key())},${secretish}` })
      } catch (e) {
        return e as GatewayError
      }
      throw new Error('expected an error')
    })()
    expect(err.message).toBe(
      'GATEHOUSE_MASTER_KEYS_PREVIOUS: entry 2 is not a master key (base64 of 32 random bytes)',
    )
    expect(err.message).not.toContain(secretish)
    writeFileSync(join(dir, PREVIOUS_KEYS_FILE), `${b64(key())}\n`, { mode: 0o644 })
    expect(() => loadMasterKeys(dir, {})).toThrow(/readable by other users .* chmod 600/)
  })

  it('rotateMasterKeyFile: new DATA/master.key, the old one kept as previous, both 0600', () => {
    const dir = tmp()
    const old = loadMasterKey(dir, {})
    const { primary, previous } = rotateMasterKeyFile(dir, {})
    expect(previous.id).toBe(old.id)
    expect(primary.id).not.toBe(old.id)
    expect(loadMasterKeys(dir, {}).map((k) => k.id)).toEqual([primary.id, old.id])
    const second = rotateMasterKeyFile(dir, {})
    expect(loadMasterKeys(dir, {}).map((k) => k.id)).toEqual([second.primary.id, old.id, primary.id])
    for (const f of ['master.key', PREVIOUS_KEYS_FILE])
      expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600)
    expect(readFileSync(join(dir, PREVIOUS_KEYS_FILE), 'utf8')).toMatch(new RegExp(`# ${old.id} retired`))
    expect(() => rotateMasterKeyFile(dir, { GATEHOUSE_MASTER_KEY: b64(key()) })).toThrow(
      /set the new key in GATEHOUSE_MASTER_KEY/,
    )
  })
})
