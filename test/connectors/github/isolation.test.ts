import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS, UpstreamAuthError } from '../../../connectors/index.js'
import type { BuiltinTool } from '../../../connectors/types.js'
import { start, type GithubFake } from '../../fixtures/github-api.mjs'
import { caller, data, errorText, toolMap } from '../helpers.js'

let fake: GithubFake
let tools: Map<string, BuiltinTool>

beforeAll(async () => {
  fake = await start()
  tools = toolMap(BUILTIN_CONNECTORS.github!, fake.url)
})
afterAll(() => fake.close())

describe('github: one tool list, many users', () => {
  it('two tokens used concurrently act as two identities, call by call', async () => {
    fake.state.delayMs = 5 // keep calls in flight together
    const as = caller(tools)
    const calls = Array.from({ length: 20 }, (_, i) => {
      const token = i % 2 === 0 ? 'gho_alice' : 'gho_bob'
      return as(token)('get_me').then((r) => ({ token, login: data(r).login }))
    })
    const results = await Promise.all(calls)
    fake.state.delayMs = 0
    for (const r of results) expect(r.login).toBe(r.token === 'gho_alice' ? 'alice' : 'bob')
    const seen = fake.state.requests.filter((r) => r.path === '/user').map((r) => r.authorization)
    expect(seen.filter((a) => a === 'token gho_alice')).toHaveLength(10)
    expect(seen.filter((a) => a === 'token gho_bob')).toHaveLength(10)
  })

  it('what one user may see and write stays theirs', async () => {
    const as = caller(tools)
    const [mine, theirs] = await Promise.all([
      as('gho_alice')('get_repository', { owner: 'alice', repo: 'notes' }),
      as('gho_bob')('get_repository', { owner: 'alice', repo: 'notes' }),
    ])
    expect(data(mine).private).toBe(true)
    expect(errorText(theirs)).toBe('GitHub API error 404: Not Found')
    const [a, b] = await Promise.all([
      as('gho_alice')('create_issue', { owner: 'acme', repo: 'widgets', title: 'from alice' }),
      as('gho_bob')('create_issue', { owner: 'acme', repo: 'widgets', title: 'from bob' }),
    ])
    expect(data(a).user).toBe('alice')
    expect(data(b).user).toBe('bob')
  })
})

describe('github without a token', () => {
  it('refuses instead of calling GitHub anonymously', async () => {
    const before = fake.state.requests.length
    for (const token of ['', '  ']) {
      const err = await caller(tools)(token)('get_repository', { owner: 'acme', repo: 'widgets' }).catch(
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(UpstreamAuthError)
      expect(err).toMatchObject({ status: 401, message: 'No upstream token was given for get_repository' })
    }
    expect(fake.state.requests.length).toBe(before)
  })
})

describe('github cancellation', () => {
  it('aborting the signal cancels the HTTP request and rejects with the reason', async () => {
    fake.state.delayMs = 5_000
    const before = fake.state.aborted
    const ac = new AbortController()
    const started = Date.now()
    const call = caller(tools)('gho_alice', ac.signal)('get_me')
    setTimeout(() => ac.abort(new Error('caller went away')), 100)
    await expect(call).rejects.toThrow('caller went away')
    expect(Date.now() - started).toBeLessThan(2_000)
    await expect.poll(() => fake.state.aborted).toBe(before + 1)
    fake.state.delayMs = 0
  })

  it('an already aborted signal sends nothing', async () => {
    const before = fake.state.requests.length
    const ac = new AbortController()
    ac.abort(new Error('too late'))
    await expect(caller(tools)('gho_alice', ac.signal)('get_me')).rejects.toThrow('too late')
    expect(fake.state.requests.length).toBe(before)
  })
})
