import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS } from '../../../connectors/index.js'
import { start, type SlackFake } from '../../fixtures/slack-api.mjs'
import { caller, data, errorText, toolMap } from '../helpers.js'

let fake: SlackFake
let alice: ReturnType<ReturnType<typeof caller>>

beforeAll(async () => {
  fake = await start()
  alice = caller(toolMap(BUILTIN_CONNECTORS.slack!, fake.url))('xoxp-alice')
})
afterAll(() => fake.close())

const last = () => fake.state.requests.at(-1)!

describe('slack tools against the Web API fake', () => {
  it('lists the tools the brief names, with object input schemas and annotations', () => {
    const tools = BUILTIN_CONNECTORS.slack!.tools({ baseUrl: fake.url })
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        'add_reaction',
        'auth_test',
        'get_channel_history',
        'get_thread_replies',
        'get_user_info',
        'list_channels',
        'post_message',
        'reply_to_thread',
      ].sort(),
    )
    for (const t of tools) {
      expect(t.name).toMatch(/^[a-z0-9_]+$/)
      expect(t.inputSchema.type).toBe('object')
      expect(t.description.length).toBeGreaterThan(40)
    }
    const post = tools.find((t) => t.name === 'post_message')!
    expect(post.annotations).toMatchObject({ readOnlyHint: false, openWorldHint: true })
    expect((post.inputSchema.required as string[]).sort()).toEqual(['channel', 'text'])
  })

  it('auth_test says who the token belongs to', async () => {
    expect(data(await alice('auth_test'))).toEqual({
      user_id: 'U0ALICE',
      user: 'alice',
      team_id: 'T0ACME',
      team: 'Acme',
      url: 'https://acme.slack.example/',
      enterprise_id: null,
      bot_id: null,
    })
    expect(last()).toMatchObject({ method: 'auth.test', authorization: 'Bearer xoxp-alice' })
  })

  it('list_channels pages with next_cursor and honours types and exclude_archived', async () => {
    const first = data(await alice('list_channels', { limit: 2 }))
    expect(first.channels.map((c: any) => c.name)).toEqual(['general', 'random'])
    expect(first.channels[0]).toEqual({
      id: 'C0GENERAL',
      name: 'general',
      is_private: false,
      is_archived: false,
      is_member: true,
      is_im: false,
      is_mpim: false,
      user: null,
      topic: 'Company-wide',
      purpose: null,
      num_members: 3,
    })
    expect(last().args).toMatchObject({ types: 'public_channel', exclude_archived: 'true', limit: '2' })
    const second = data(await alice('list_channels', { limit: 2, cursor: first.next_cursor }))
    expect(second.channels.map((c: any) => c.name)).toEqual(['dev'])
    expect(second.next_cursor).toBeNull()
    const everything = data(
      await alice('list_channels', { types: ['public_channel', 'private_channel'], exclude_archived: false }),
    )
    expect(everything.channels.map((c: any) => c.name)).toEqual([
      'general',
      'random',
      'dev',
      'old-news',
      'secret',
    ])
  })

  it('get_channel_history returns top-level messages newest first, with time bounds', async () => {
    const h = data(await alice('get_channel_history', { channel: 'C0GENERAL', limit: 2 }))
    expect(h.messages.map((m: any) => m.text)).toEqual(['Lunch?', 'Release at 3pm'])
    expect(h.messages[0].reactions).toEqual([{ name: 'pizza', count: 1 }])
    expect(h.messages[1]).toMatchObject({ user: 'U0ALICE', reply_count: 2, ts: '1700000002.000200' })
    expect(h.has_more).toBe(true)
    expect(h.next_cursor).toEqual(expect.any(String))
    const more = data(
      await alice('get_channel_history', { channel: 'C0GENERAL', limit: 2, cursor: h.next_cursor }),
    )
    expect(more.messages.map((m: any) => m.text)).toEqual(['Morning all'])
    expect(more.has_more).toBe(false)
    const bounded = data(
      await alice('get_channel_history', {
        channel: 'C0GENERAL',
        oldest: '1700000001.000100',
        latest: '1700000005.000500',
      }),
    )
    expect(bounded.messages.map((m: any) => m.text)).toEqual(['Release at 3pm'])
    expect(last().args).toMatchObject({ oldest: '1700000001.000100', latest: '1700000005.000500' })
  })

  it('get_thread_replies returns the parent and replies', async () => {
    const t = data(
      await alice('get_thread_replies', { channel: 'C0GENERAL', thread_ts: '1700000002.000200' }),
    )
    expect(t.messages.map((m: any) => `${m.user}:${m.text}`)).toEqual([
      'U0ALICE:Release at 3pm',
      'U0BOB:Sounds good',
      'U0CAROL:I will watch it',
    ])
    expect(last()).toMatchObject({ method: 'conversations.replies', args: { ts: '1700000002.000200' } })
  })

  it('get_user_info projects the profile', async () => {
    expect(data(await alice('get_user_info', { user: 'U0BOB' }))).toEqual({
      id: 'U0BOB',
      name: 'bob',
      real_name: 'Bob Builder',
      display_name: 'bob',
      title: null,
      email: 'bob@example.com',
      tz: 'America/New_York',
      is_bot: false,
      is_admin: false,
      deleted: false,
      team_id: 'T0ACME',
    })
  })

  it('post_message posts as the caller', async () => {
    const posted = data(await alice('post_message', { channel: 'C0GENERAL', text: 'Shipping *now*' }))
    expect(posted).toEqual({ channel: 'C0GENERAL', ts: expect.stringMatching(/^\d+\.\d+$/) })
    expect(last()).toMatchObject({
      method: 'chat.postMessage',
      args: { channel: 'C0GENERAL', text: 'Shipping *now*', unfurl_links: 'false' },
    })
    const stored = fake.state.messages.C0GENERAL!.find((m) => m.ts === posted.ts)
    expect(stored).toMatchObject({ user: 'U0ALICE', text: 'Shipping *now*' })
  })

  it('reply_to_thread replies inside the thread', async () => {
    const r = data(
      await alice('reply_to_thread', {
        channel: 'C0GENERAL',
        thread_ts: '1700000002.000200',
        text: 'Done',
        reply_broadcast: true,
      }),
    )
    expect(r).toMatchObject({ channel: 'C0GENERAL', thread_ts: '1700000002.000200' })
    expect(last().args).toMatchObject({ thread_ts: '1700000002.000200', reply_broadcast: 'true' })
    const thread = data(
      await alice('get_thread_replies', { channel: 'C0GENERAL', thread_ts: '1700000002.000200' }),
    )
    expect(thread.messages.at(-1)).toMatchObject({ ts: r.ts, text: 'Done', user: 'U0ALICE' })
  })

  it('add_reaction strips colons and reports Slack errors by code', async () => {
    const r = data(
      await alice('add_reaction', { channel: 'C0GENERAL', timestamp: '1700000001.000100', name: ':eyes:' }),
    )
    expect(r).toEqual({ channel: 'C0GENERAL', timestamp: '1700000001.000100', name: 'eyes', added: true })
    expect(last().args).toMatchObject({ name: 'eyes', timestamp: '1700000001.000100' })
    const again = await alice('add_reaction', {
      channel: 'C0GENERAL',
      timestamp: '1700000001.000100',
      name: 'eyes',
    })
    expect(errorText(again)).toBe('Slack API error: already_reacted')
  })
})
