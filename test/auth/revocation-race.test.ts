import { describe, expect, it } from 'vitest'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { Authenticator } from '../../src/auth/authenticator.js'
import type { ApiKeyRecord, ApiKeyStore } from '../../src/store/types.js'

/**
 * Revocation is immediate in this process (docs/auth.md), also against a key lookup that was
 * already in flight when the key was revoked (an async store such as PostgreSQL): the answer read
 * before the revocation must not be cached, nor let the key in.
 */

const KEY = 'gk_race_0123456789abcdefghijklmnopqrstuvwxyz'

/** A key store holding one key whose lookups can be held on a latch. */
function latchedStore() {
  const record: ApiKeyRecord = {
    id: 'k1',
    tenant: 'acme',
    name: 'racer',
    role: 'member',
    operator: false,
    scopes: [],
    createdAt: new Date().toISOString(),
  }
  let revoked = false
  let hold: Promise<void> | undefined
  let release = () => {}
  let started = () => {}
  const s = {
    lookups: 0,
    /** The next lookup reads the row at once but answers only when released. */
    latch(): { started: Promise<void>; release(): void } {
      const begun = new Promise<void>((r) => (started = r))
      hold = new Promise<void>((r) => (release = r))
      return { started: begun, release: () => release() }
    },
    revoke: () => void (revoked = true),
    store: {
      lookupByHash: async (hash: string) => {
        s.lookups++
        const row = hash === hashApiKey(KEY) && !revoked ? record : undefined
        const h = hold
        hold = undefined
        if (h) {
          started()
          await h
        }
        return row
      },
    } as unknown as ApiKeyStore,
  }
  return s
}

describe('API key revocation against an in-flight lookup', () => {
  it('a key revoked (and invalidated) while its lookup is pending is neither accepted nor cached', async () => {
    const keys = latchedStore()
    const auth = new Authenticator({ keys: keys.store })
    const latch = keys.latch()
    const pending = auth.authenticate(`Bearer ${KEY}`).then(
      (ctx) => ({ ok: true as const, principal: ctx.principal.id }),
      (err: Error) => ({ ok: false as const, err }),
    )
    await latch.started // the row was read before the revocation
    keys.revoke() // DELETE /v1/admin/keys/:id: the store first, then the cache
    auth.invalidate()
    latch.release()
    const r = await pending
    expect(r.ok, JSON.stringify(r)).toBe(false)
    expect(auth.cached(`Bearer ${KEY}`)).toBeUndefined()
    await expect(auth.authenticate(`Bearer ${KEY}`)).rejects.toThrow(/invalid or expired API key/)
  })

  it('without a revocation the lookup is cached as before: one store read for many requests', async () => {
    const keys = latchedStore()
    const auth = new Authenticator({ keys: keys.store })
    for (let i = 0; i < 5; i++) expect((await auth.authenticate(`Bearer ${KEY}`)).principal.id).toBe('k1')
    expect(keys.lookups).toBe(1)
    expect(auth.cached(`Bearer ${KEY}`)?.principal.id).toBe('k1')
    // A lookup in flight across an invalidate() that revoked nothing is read again, and the key gets in.
    auth.invalidate()
    const latch = keys.latch()
    const pending = auth.authenticate(`Bearer ${KEY}`)
    await latch.started
    auth.invalidate()
    latch.release()
    expect((await pending).principal.id).toBe('k1')
    expect(keys.lookups).toBe(3)
  })
})
