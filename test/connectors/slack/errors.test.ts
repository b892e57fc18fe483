import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS, UpstreamAuthError } from '../../../connectors/index.js'
import { start, type SlackFake } from '../../fixtures/slack-api.mjs'
import { caller, errorText, toolMap } from '../helpers.js'

let fake: SlackFake
let as: ReturnType<typeof caller>

beforeAll(async () => {
  fake = await start()
  as = caller(toolMap(BUILTIN_CONNECTORS.slack!, fake.url))
})
afterAll(() => fake.close())

async function authError(p: Promise<unknown>): Promise<UpstreamAuthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(UpstreamAuthError)
  return err as UpstreamAuthError
}

describe('slack argument validation', () => {
  it('names every bad field and calls nothing', async () => {
    const before = fake.state.requests.length
    const text = errorText(
      await as('xoxp-alice')('reply_to_thread', { channel: '', thread_ts: 'yesterday', txt: 'x' }),
    )
    expect(text).toMatch(/^Invalid arguments for reply_to_thread: /)
    expect(text).toContain('channel: Too small')
    expect(text).toContain('thread_ts: must be a Slack timestamp like "1700000000.000100"')
    expect(text).toContain('text: Invalid input: expected string, received undefined')
    expect(text).toContain('Unrecognized key: "txt"')
    expect(
      errorText(
        await as('xoxp-alice')('add_reaction', { channel: 'C0GENERAL', timestamp: '1.2', name: '::' }),
      ),
    ).toContain('name: Too small')
    expect(errorText(await as('xoxp-alice')('list_channels', { types: ['dm'] }))).toContain(
      'types.0: Invalid option',
    )
    expect(fake.state.requests.length).toBe(before)
  })
})

describe('slack error mapping', () => {
  it('token problems → UpstreamAuthError 401 naming the Slack code, never the token', async () => {
    const bad = await authError(as('xoxp-unknown-0123456789')('auth_test'))
    expect(bad).toMatchObject({ status: 401, message: 'Slack refused the token: invalid_auth' })
    fake.state.revoked.add('xoxp-bob')
    const revoked = await authError(as('xoxp-bob')('auth_test'))
    fake.state.revoked.delete('xoxp-bob')
    expect(revoked.message).toBe('Slack refused the token: token_revoked')
    for (const code of ['token_expired', 'not_authed', 'account_inactive']) {
      fake.state.failNext({ ok: false, error: code })
      expect((await authError(as('xoxp-alice')('auth_test'))).message).toBe(
        `Slack refused the token: ${code}`,
      )
    }
    expect(JSON.stringify([bad, revoked, bad.message, revoked.message])).not.toMatch(/xoxp-/)
  })

  it('missing_scope → UpstreamAuthError 403 with the needed scopes', async () => {
    const err = await authError(as('xoxp-carol')('post_message', { channel: 'C0GENERAL', text: 'hi' }))
    expect(err).toMatchObject({ status: 403, scopes: ['chat:write'] })
    expect(err.message).toBe('Slack token lacks a scope: needs chat:write')
    const multi = await authError(
      as('xoxp-carol')('list_channels', { types: ['public_channel', 'private_channel'] }),
    )
    expect(multi.scopes).toEqual(['groups:read'])
  })

  it('other Slack errors are tool errors with the code and any detail messages', async () => {
    expect(errorText(await as('xoxp-bob')('get_channel_history', { channel: 'G0SECRET' }))).toBe(
      'Slack API error: channel_not_found',
    )
    expect(errorText(await as('xoxp-carol')('get_user_info', { user: 'U0NOBODY' }))).toBe(
      'Slack API error: user_not_found',
    )
    fake.state.failNext({
      ok: false,
      error: 'invalid_arguments',
      response_metadata: { messages: ['[ERROR] missing required field: channel'] },
    })
    expect(errorText(await as('xoxp-alice')('get_channel_history', { channel: 'C0GENERAL' }))).toBe(
      'Slack API error: invalid_arguments ([ERROR] missing required field: channel)',
    )
  })

  it('429 reports Retry-After and is not retried', async () => {
    const before = fake.state.requests.length
    fake.state.rateLimit = { calls: 1, seconds: 17 }
    const started = Date.now()
    const text = errorText(await as('xoxp-alice')('post_message', { channel: 'C0GENERAL', text: 'x' }))
    expect(text).toBe('Slack rate limit reached (ratelimited). Retry after 17 seconds (Retry-After).')
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(fake.state.requests.length).toBe(before + 1)
    expect(fake.state.rateLimit.calls).toBe(0)
  })

  it('an unreachable API is a tool error naming the cause', async () => {
    const closed = await start()
    await closed.close()
    const text = errorText(
      await caller(toolMap(BUILTIN_CONNECTORS.slack!, closed.url))('xoxp-alice')('auth_test'),
    )
    expect(text).toMatch(/^Slack API unreachable: .*ECONNREFUSED/)
  })

  it('never returns the token, even when the upstream echoes it', async () => {
    fake.state.failNext({ ok: false, error: 'xoxp-alice_is_not_allowed' })
    expect(errorText(await as('xoxp-alice')('auth_test'))).toBe('Slack API error: [redacted]_is_not_allowed')
    for (const [name, args] of [
      ['auth_test', {}],
      ['list_channels', {}],
      ['get_channel_history', { channel: 'C0GENERAL' }],
      ['get_user_info', { user: 'U0ALICE' }],
    ] as const) {
      expect(JSON.stringify(await as('xoxp-alice')(name, args))).not.toContain('xoxp-alice')
    }
  })
})
