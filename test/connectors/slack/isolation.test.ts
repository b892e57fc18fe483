import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS } from '../../../connectors/index.js'
import type { BuiltinTool } from '../../../connectors/types.js'
import { start, type SlackFake } from '../../fixtures/slack-api.mjs'
import { caller, data, errorText, toolMap } from '../helpers.js'

let fake: SlackFake
let tools: Map<string, BuiltinTool>

beforeAll(async () => {
  fake = await start()
  tools = toolMap(BUILTIN_CONNECTORS.slack!, fake.url)
})
afterAll(() => fake.close())

describe('slack: one tool list, many users', () => {
  it('two tokens used concurrently act as two identities, call by call', async () => {
    fake.state.delayMs = 5
    const as = caller(tools)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const token = i % 2 === 0 ? 'xoxp-alice' : 'xoxp-bob'
        return as(token)('auth_test').then((r) => ({ token, user: data(r).user_id }))
      }),
    )
    fake.state.delayMs = 0
    for (const r of results) expect(r.user).toBe(r.token === 'xoxp-alice' ? 'U0ALICE' : 'U0BOB')
    const seen = fake.state.requests.filter((r) => r.method === 'auth.test').map((r) => r.authorization)
    expect(seen.filter((a) => a === 'Bearer xoxp-alice')).toHaveLength(10)
    expect(seen.filter((a) => a === 'Bearer xoxp-bob')).toHaveLength(10)
  })

  it('messages are posted as whoever called, and private channels stay private', async () => {
    const as = caller(tools)
    const [a, b] = await Promise.all([
      as('xoxp-alice')('post_message', { channel: 'C0RANDOM', text: 'from alice' }),
      as('xoxp-bob')('post_message', { channel: 'C0RANDOM', text: 'from bob' }),
    ])
    const byTs = (ts: string) => fake.state.messages.C0RANDOM!.find((m) => m.ts === ts)
    expect(byTs(data(a).ts)).toMatchObject({ user: 'U0ALICE', text: 'from alice' })
    expect(byTs(data(b).ts)).toMatchObject({ user: 'U0BOB', text: 'from bob' })
    const [mine, theirs] = await Promise.all([
      as('xoxp-alice')('get_channel_history', { channel: 'G0SECRET' }),
      as('xoxp-bob')('get_channel_history', { channel: 'G0SECRET' }),
    ])
    expect(data(mine).messages.map((m: any) => m.text)).toEqual(['the plan'])
    expect(errorText(theirs)).toBe('Slack API error: channel_not_found')
  })
})

describe('slack cancellation', () => {
  it('aborting the signal cancels the HTTP request and rejects with the reason', async () => {
    fake.state.delayMs = 5_000
    const before = fake.state.aborted
    const ac = new AbortController()
    const started = Date.now()
    const call = caller(tools)('xoxp-alice', ac.signal)('post_message', {
      channel: 'C0GENERAL',
      text: 'slow',
    })
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
    await expect(caller(tools)('xoxp-alice', ac.signal)('auth_test')).rejects.toThrow('too late')
    expect(fake.state.requests.length).toBe(before)
  })
})
