import { createHash, randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createContext } from '../../src/context.js'
import type { NewConnection, OAuthClientRecord, OAuthStateRecord } from '../../src/store/connections.js'
import type { Store } from '../../src/store/types.js'
import {
  connectionAad,
  localKeyProvider,
  oauthClientAad,
  oauthStateAad,
  openEnvelope,
  openString,
  rewrapEnvelope,
  sealEnvelope,
  sealString,
} from '../../src/vault/envelope.js'
import { masterKeyFrom } from '../../src/vault/master-key.js'

/** Everything the store holds, as raw text (the database file, or the tables' text), for plaintext greps. */
export type RawText = (store: Store) => Promise<string>

const ACCESS = 'gho_PLAINTEXT_ACCESS_7f3a9c'
const REFRESH = 'ghr_PLAINTEXT_REFRESH_c9a3f7'
const CLIENT_SECRET = 'PLAINTEXT_CLIENT_SECRET_5d1e'
const VERIFIER = 'PLAINTEXT_PKCE_VERIFIER_0b8e'
const T = '2031-05-01T10:00:00.000Z'
const later = (s: number) => new Date(Date.parse(T) + s * 1000).toISOString()
const stateIdOf = (raw: string) => createHash('sha256').update(raw).digest('hex')

/** Connections, OAuth states and OAuth clients: every store implementation runs this suite. */
export function connectionsContract(name: string, open: () => Promise<Store>, rawText?: RawText): void {
  describe(`connection store contract: ${name}`, () => {
    let store: Store
    const keys = localKeyProvider([masterKeyFrom(randomBytes(32))])
    const acme = createContext({
      tenant: 'acme',
      principal: { kind: 'user', id: 'alice' },
      roles: ['member'],
    })
    const globex = createContext({
      tenant: 'globex',
      principal: { kind: 'user', id: 'gina' },
      roles: ['admin'],
    })
    let seq = 0
    const nextId = () => `conn_${String(++seq).padStart(4, '0')}_${randomBytes(3).toString('hex')}`

    async function newConn(over: Partial<NewConnection> = {}, tokens = ACCESS): Promise<NewConnection> {
      const base = { id: nextId(), tenant: 'acme', userId: 'user:alice', connector: 'github', ...over }
      return {
        provider: 'https://github.com/login/oauth',
        scopes: ['repo', 'read:user'],
        hasRefreshToken: true,
        expiresAt: later(3600),
        ...base,
        sealed: await sealEnvelope(
          keys,
          JSON.stringify({ access_token: tokens, refresh_token: REFRESH }),
          connectionAad(base),
        ),
        ...(over.sealed ? { sealed: over.sealed } : {}),
      }
    }

    async function newState(raw: string, over: Partial<OAuthStateRecord> = {}): Promise<OAuthStateRecord> {
      const base = { id: stateIdOf(raw), tenant: 'acme', userId: 'user:alice', connector: 'github' }
      return {
        ...base,
        sealedVerifier: await sealString(keys, VERIFIER, oauthStateAad(base)),
        redirectUri: 'http://127.0.0.1:7420/oauth/callback',
        scopes: ['repo'],
        issuer: 'https://github.com',
        expiresAt: later(600),
        createdAt: T,
        ...over,
      }
    }

    async function newClient(over: Partial<OAuthClientRecord> = {}): Promise<OAuthClientRecord> {
      const base = { tenant: 'acme', connector: 'github', issuer: 'https://github.com', ...over }
      return {
        clientId: 'client-1',
        sealedSecret: await sealString(keys, CLIENT_SECRET, oauthClientAad(base)),
        tokenEndpointAuthMethod: 'client_secret_post',
        registration: { client_name: 'Gatehouse', redirect_uris: ['http://127.0.0.1:7420/oauth/callback'] },
        createdAt: T,
        ...over,
        ...base,
      }
    }

    beforeEach(async () => {
      store = await open()
    })
    afterEach(async () => store.close())

    it('save creates version 1; find, get and list return it; a save of the same user and connector replaces it with a new row', async () => {
      const c1 = await newConn({ account: 'alice-gh' })
      const { record, replaced } = await store.connections.save(c1)
      expect(replaced).toBeUndefined()
      expect(record).toMatchObject({ ...c1, version: 1 })
      expect(record.createdAt).toBe(record.updatedAt)
      expect(Date.parse(record.createdAt)).not.toBeNaN()
      expect(await store.connections.find('acme', 'user:alice', 'github')).toEqual(record)
      expect(await store.connections.get(acme, c1.id)).toEqual(record)
      expect(await openEnvelope(keys, record.sealed, connectionAad(record))).toContain(ACCESS)

      const c2 = await newConn({ scopes: ['repo'] })
      delete c2.expiresAt
      const second = await store.connections.save(c2)
      expect(second.replaced).toEqual(record)
      expect(second.record).toMatchObject({ id: c2.id, version: 1, scopes: ['repo'] })
      expect(second.record).not.toHaveProperty('expiresAt')
      expect(second.record).not.toHaveProperty('account')
      expect(await store.connections.get(acme, c1.id)).toBeUndefined()
      expect(await store.connections.list(acme)).toEqual([second.record])

      // Copies, not references.
      second.record.scopes.push('admin')
      second.record.sealed.keyId = 'x'
      expect((await store.connections.get(acme, c2.id))!.scopes).toEqual(['repo'])
      expect((await store.connections.get(acme, c2.id))!.sealed.keyId).toBe(keys.primaryId)
      // An id that is taken by another row is a conflict.
      await expect(
        store.connections.save(await newConn({ id: c2.id, connector: 'slack' })),
      ).rejects.toMatchObject({ code: 'conflict' })
    })

    it('timestamps are stored as ISO-8601 UTC; bad input is refused clearly', async () => {
      const c = await newConn({ expiresAt: '2031-05-01T12:00:00+02:00' })
      expect((await store.connections.save(c)).record.expiresAt).toBe('2031-05-01T10:00:00.000Z')
      await expect(
        store.connections.save(await newConn({ connector: 'a', expiresAt: 'soon' })),
      ).rejects.toThrow(/expiresAt is not an ISO-8601 timestamp/)
      await expect(store.connections.save(await newConn({ connector: 'b', userId: '' }))).rejects.toThrow(
        /userId must be a non-empty string/,
      )
    })

    it('tenant isolation: get, list and delete only reach the caller tenant', async () => {
      const mine = (await store.connections.save(await newConn())).record
      const theirs = (await store.connections.save(await newConn({ tenant: 'globex', userId: 'user:gina' })))
        .record
      expect(await store.connections.get(globex, mine.id)).toBeUndefined()
      expect(await store.connections.get(acme, theirs.id)).toBeUndefined()
      expect((await store.connections.list(globex)).map((c) => c.id)).toEqual([theirs.id])
      expect(await store.connections.list(globex, { userId: 'user:alice' })).toEqual([])
      expect(await store.connections.delete(globex, mine.id)).toBeUndefined()
      expect(await store.connections.get(acme, mine.id)).toEqual(mine)
      // The same user id in two tenants is two connections.
      const other = (await store.connections.save(await newConn({ tenant: 'globex' }))).record
      expect(await store.connections.find('acme', 'user:alice', 'github')).toEqual(mine)
      expect(await store.connections.find('globex', 'user:alice', 'github')).toEqual(other)
      expect(await store.connections.delete(acme, mine.id)).toEqual(mine)
      expect(await store.connections.delete(acme, mine.id)).toBeUndefined()
      expect(await store.connections.find('acme', 'user:alice', 'github')).toBeUndefined()
    })

    it('list: newest first, filtered by user and connector', async () => {
      const ids: string[] = []
      for (const [userId, connector] of [
        ['user:alice', 'github'],
        ['user:alice', 'slack'],
        ['user:bob', 'github'],
      ] as const) {
        ids.push((await store.connections.save(await newConn({ userId, connector }))).record.id)
        await new Promise((r) => setTimeout(r, 5))
      }
      expect((await store.connections.list(acme)).map((c) => c.id)).toEqual([...ids].reverse())
      expect((await store.connections.list(acme, { userId: 'user:alice' })).map((c) => c.id)).toEqual([
        ids[1],
        ids[0],
      ])
      expect((await store.connections.list(acme, { connector: 'github' })).map((c) => c.id)).toEqual([
        ids[2],
        ids[0],
      ])
      expect(
        (await store.connections.list(acme, { userId: 'user:bob', connector: 'github' })).map((c) => c.id),
      ).toEqual([ids[2]])
    })

    it('update is a compare-and-swap on version: one of two writers with the same expected version wins', async () => {
      const rec = (await store.connections.save(await newConn({ account: 'old' }))).record
      const aad = connectionAad(rec)
      const sealed = await sealEnvelope(keys, 'refreshed', aad)
      await new Promise((r) => setTimeout(r, 5))
      const won = await store.connections.update(rec.id, 1, { sealed, expiresAt: later(7200) })
      expect(won).toMatchObject({ version: 2, expiresAt: later(7200), account: 'old', scopes: rec.scopes })
      expect(won!.createdAt).toBe(rec.createdAt)
      expect(won!.updatedAt > rec.updatedAt).toBe(true)
      expect(await openEnvelope(keys, won!.sealed, aad)).toBe('refreshed')
      expect(
        await store.connections.update(rec.id, 1, { sealed: await sealEnvelope(keys, 'lost', aad) }),
      ).toBeUndefined()
      expect(await openEnvelope(keys, (await store.connections.get(acme, rec.id))!.sealed, aad)).toBe(
        'refreshed',
      )
      const v3 = await store.connections.update(rec.id, 2, {
        sealed,
        expiresAt: null,
        scopes: ['repo'],
        hasRefreshToken: false,
        account: 'new',
      })
      expect(v3).toMatchObject({ version: 3, scopes: ['repo'], hasRefreshToken: false, account: 'new' })
      expect(v3).not.toHaveProperty('expiresAt')
      expect(v3).not.toHaveProperty('refreshLockedUntil')
      // The refresh lock: set with a version bump, kept by updates that leave it alone, released with null.
      const locked = await store.connections.update(rec.id, 3, { sealed, refreshLockedUntil: later(30) })
      expect(locked).toMatchObject({ version: 4, refreshLockedUntil: later(30), account: 'new' })
      expect(await store.connections.find(rec.tenant, rec.userId, rec.connector)).toMatchObject({
        refreshLockedUntil: later(30),
      })
      expect(await store.connections.update(rec.id, 4, { sealed })).toMatchObject({
        version: 5,
        refreshLockedUntil: later(30),
      })
      const released = await store.connections.update(rec.id, 5, { sealed, refreshLockedUntil: null })
      expect(released).toMatchObject({ version: 6 })
      expect(released).not.toHaveProperty('refreshLockedUntil')
      expect(await store.connections.update('missing', 1, { sealed })).toBeUndefined()
    })

    it('concurrent updates with the same expected version: exactly one wins', async () => {
      const rec = (await store.connections.save(await newConn())).record
      const aad = connectionAad(rec)
      const envelopes = await Promise.all(
        Array.from({ length: 12 }, (_, i) => sealEnvelope(keys, `tokens-${i}`, aad)),
      )
      const results = await Promise.all(
        envelopes.map((sealed) => store.connections.update(rec.id, 1, { sealed })),
      )
      const winners = results.filter((r) => r !== undefined)
      expect(winners).toHaveLength(1)
      const stored = (await store.connections.get(acme, rec.id))!
      expect(stored.version).toBe(2)
      expect(stored.sealed).toEqual(winners[0]!.sealed)
      // Concurrent replacing saves of one (tenant, user, connector) leave exactly one row.
      const saves = await Promise.all(
        Array.from({ length: 6 }, async () => store.connections.save(await newConn({ connector: 'slack' }))),
      )
      const rows = await store.connections.list(acme, { connector: 'slack' })
      expect(rows).toHaveLength(1)
      expect(saves.map((s) => s.record.id)).toContain(rows[0]!.id)
    })

    it('rewrap swaps the wrapped key without bumping the version, only over the same version and ciphertext', async () => {
      const oldKey = masterKeyFrom(randomBytes(32))
      const base = { id: nextId(), tenant: 'acme', userId: 'user:alice', connector: 'github' }
      const sealed = await sealEnvelope(localKeyProvider([oldKey]), ACCESS, connectionAad(base))
      const rec = (await store.connections.save(await newConn({ ...base, sealed }))).record
      const rotated = localKeyProvider([masterKeyFrom(randomBytes(32)), oldKey])
      const next = await rewrapEnvelope(rotated, rec.sealed, connectionAad(rec))
      expect(next).toBeDefined()
      expect(await store.connections.rewrap(rec.id, 2, next!)).toBe(false)
      expect(
        await store.connections.rewrap(rec.id, 1, {
          ...next!,
          ciphertext: (await sealEnvelope(rotated, ACCESS, connectionAad(rec))).ciphertext,
        }),
      ).toBe(false)
      expect(await store.connections.rewrap(rec.id, 1, next!)).toBe(true)
      const after = (await store.connections.get(acme, rec.id))!
      expect(after).toMatchObject({ version: 1, sealed: next, updatedAt: rec.updatedAt })
      // The broker's compare-and-swap from before the rewrap still holds.
      expect(await store.connections.update(rec.id, 1, { sealed: next! })).toMatchObject({ version: 2 })
      expect(await store.connections.rewrap('missing', 1, next!)).toBe(false)
    })

    it('deleteIfVersion deletes only the version the caller saw', async () => {
      const rec = (await store.connections.save(await newConn())).record
      await store.connections.update(rec.id, 1, { sealed: rec.sealed })
      expect(await store.connections.deleteIfVersion(rec.id, 1)).toBe(false)
      expect(await store.connections.get(acme, rec.id)).toBeDefined()
      expect(await store.connections.deleteIfVersion(rec.id, 2)).toBe(true)
      expect(await store.connections.get(acme, rec.id)).toBeUndefined()
      expect(await store.connections.deleteIfVersion(rec.id, 2)).toBe(false)
    })

    it('scan pages through every tenant by id', async () => {
      const ids: string[] = []
      for (let i = 0; i < 7; i++)
        ids.push(
          (
            await store.connections.save(
              await newConn({ tenant: i % 2 ? 'globex' : 'acme', connector: `c${i}` }),
            )
          ).record.id,
        )
      const seen: string[] = []
      let after: string | undefined
      for (;;) {
        const page = await store.connections.scan(after, 3)
        expect(page.length).toBeLessThanOrEqual(3)
        if (!page.length) break
        seen.push(...page.map((c) => c.id))
        after = page[page.length - 1]!.id
      }
      expect(seen).toEqual([...ids].sort())
      expect(await store.connections.scan(seen[seen.length - 1], 10)).toEqual([])
    })

    it('takeState consumes a state once; expired states are deleted and not returned', async () => {
      const s = await newState('raw-state-1', { resource: 'https://mcp.example/', returnTo: '/ui/' })
      await store.connections.putState(s)
      await expect(store.connections.putState(s)).rejects.toMatchObject({ code: 'conflict' })
      const taken = await store.connections.takeState(s.id, later(1))
      expect(taken).toEqual(s)
      expect(await openString(keys, taken!.sealedVerifier, oauthStateAad(taken!))).toBe(VERIFIER)
      expect(await store.connections.takeState(s.id, later(1))).toBeUndefined()

      const expired = await newState('raw-state-2')
      await store.connections.putState(expired)
      expect(await store.connections.takeState(expired.id, expired.expiresAt)).toBeUndefined()
      expect(await store.connections.takeState(expired.id, T)).toBeUndefined() // deleted, not only hidden

      const plain = await newState('raw-state-3')
      delete plain.resource
      await store.connections.putState(plain)
      expect(await store.connections.takeState(plain.id, T)).not.toHaveProperty('resource')
    })

    it('concurrent takes of one state: exactly one caller gets it', async () => {
      const s = await newState('raw-state-race')
      await store.connections.putState(s)
      const results = await Promise.all(
        Array.from({ length: 12 }, () => store.connections.takeState(s.id, T)),
      )
      expect(results.filter((r) => r !== undefined)).toHaveLength(1)
    })

    it('pruneStates deletes expired states only; raw state ids and plaintext verifiers are refused', async () => {
      await store.connections.putState(await newState('a', { expiresAt: later(10) }))
      await store.connections.putState(await newState('b', { expiresAt: later(20) }))
      const live = await newState('c', { expiresAt: later(30) })
      await store.connections.putState(live)
      expect(await store.connections.pruneStates(later(20))).toBe(2)
      expect(await store.connections.pruneStates(later(20))).toBe(0)
      expect(await store.connections.takeState(live.id, later(25))).toEqual(live)
      await expect(
        store.connections.putState(await newState('d', { id: 'raw-state-param' })),
      ).rejects.toThrow(/sha256 hex of the state parameter/)
      await expect(
        store.connections.putState(await newState('e', { sealedVerifier: VERIFIER })),
      ).rejects.toThrow(/PKCE verifier must be stored sealed/)
      await expect(store.connections.takeState('raw-state-param', T)).rejects.toThrow(/sha256 hex/)
    })

    it('putClient: the first writer wins and everyone gets the stored registration back', async () => {
      const first = await newClient()
      expect(await store.connections.putClient(first)).toEqual(first)
      const second = await newClient({ clientId: 'client-2', registration: { x: 1 } })
      expect(await store.connections.putClient(second)).toEqual(first)
      expect(await store.connections.getClient('acme', 'github', 'https://github.com')).toEqual(first)
      expect(await store.connections.getClient('globex', 'github', 'https://github.com')).toBeUndefined()
      // Concurrent registrations of another (tenant, connector, issuer): all get the same one.
      const racers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => newClient({ tenant: 'globex', clientId: `c-${i}` })),
      )
      const got = await Promise.all(racers.map((r) => store.connections.putClient(r)))
      expect(new Set(got.map((g) => g.clientId)).size).toBe(1)
      // A public client (no secret), then the full scan and a secret update.
      const pub = await newClient({ issuer: 'https://slack.com' })
      delete pub.sealedSecret
      delete pub.tokenEndpointAuthMethod
      expect(await store.connections.putClient(pub)).toEqual(pub)
      expect((await store.connections.scanClients()).map((c) => [c.tenant, c.issuer])).toEqual([
        ['acme', 'https://github.com'],
        ['acme', 'https://slack.com'],
        ['globex', 'https://github.com'],
      ])
      const resealed = await sealString(keys, CLIENT_SECRET, oauthClientAad(first))
      await store.connections.updateClientSecret('acme', 'github', 'https://github.com', resealed)
      expect((await store.connections.getClient('acme', 'github', 'https://github.com'))!.sealedSecret).toBe(
        resealed,
      )
      await expect(
        store.connections.updateClientSecret('acme', 'github', 'https://github.com', CLIENT_SECRET),
      ).rejects.toThrow(/client secrets must be stored sealed/)
      await expect(
        store.connections.putClient({ ...pub, issuer: 'x', sealedSecret: CLIENT_SECRET }),
      ).rejects.toThrow(/client secrets must be stored sealed/)
    })

    it('a plaintext token set is refused', async () => {
      const c = await newConn()
      await expect(
        store.connections.save({ ...c, sealed: { keyId: 'k', wrappedKey: 'w', ciphertext: ACCESS } }),
      ).rejects.toThrow(/must be stored as an envelope/)
      await expect(
        store.connections.save({ ...c, sealed: ACCESS as unknown as NewConnection['sealed'] }),
      ).rejects.toThrow(/must be stored as an envelope/)
    })

    if (rawText)
      it('no plaintext token, secret or verifier is stored anywhere', async () => {
        const rec = (await store.connections.save(await newConn({ account: 'alice-gh-login' }))).record
        await store.connections.update(rec.id, 1, {
          sealed: await sealEnvelope(
            keys,
            JSON.stringify({ access_token: ACCESS + '2' }),
            connectionAad(rec),
          ),
        })
        await store.connections.save(await newConn({ connector: 'slack' }))
        await store.connections.putClient(await newClient())
        await store.connections.putState(await newState('raw-state-never-stored'))
        const raw = await rawText(store)
        // Not vacuous: the metadata is there in the clear.
        expect(raw).toContain('alice-gh-login')
        expect(raw).toContain('http://127.0.0.1:7420/oauth/callback')
        for (const secret of [ACCESS, REFRESH, CLIENT_SECRET, VERIFIER, 'raw-state-never-stored'])
          expect(raw, secret).not.toContain(secret)
      })
  })
}
