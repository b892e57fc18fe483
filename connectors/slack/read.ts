import { z } from 'zod'
import { defineTool } from '../tool.js'
import type { BuiltinTool } from '../types.js'
import { READ, channel, cursor, limit, ts } from './args.js'
import { slackFailure, slackFor } from './client.js'
import * as project from './project.js'

const CHANNEL_TYPES = ['public_channel', 'private_channel', 'mpim', 'im'] as const

/** Tools that read from Slack. */
export function readTools(apiUrl: string): BuiltinTool[] {
  return [
    defineTool(
      {
        name: 'auth_test',
        title: 'Who am I on Slack',
        description:
          'Returns the Slack identity the current user connected: user ID and name, workspace (team) ID and name, and workspace URL.',
        input: z.strictObject({}),
        annotations: READ,
        async call(_a, ctx) {
          const r = await slackFor(ctx, apiUrl).auth.test()
          return {
            user_id: r.user_id ?? null,
            user: r.user ?? null,
            team_id: r.team_id ?? null,
            team: r.team ?? null,
            url: r.url ?? null,
            enterprise_id: r.enterprise_id ?? null,
            bot_id: r.bot_id ?? null,
          }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'list_channels',
        title: 'List channels',
        description:
          'Lists conversations the user can see in the workspace (public channels by default; add private_channel, mpim or im to types). Returns IDs to use with the other tools.',
        input: z.strictObject({
          types: z
            .array(z.enum(CHANNEL_TYPES))
            .min(1)
            .default(['public_channel'])
            .describe('Conversation types'),
          exclude_archived: z.boolean().default(true).describe('Leave archived channels out'),
          limit: limit(1000, 100),
          cursor,
        }),
        annotations: READ,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).conversations.list({
            types: a.types.join(','),
            exclude_archived: a.exclude_archived,
            limit: a.limit,
            cursor: a.cursor,
          })
          return { channels: (r.channels ?? []).map(project.channel), next_cursor: project.cursor(r) }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'get_channel_history',
        title: 'Read channel messages',
        description:
          'Returns recent messages of a channel, newest first (thread replies are not included: use get_thread_replies with a message ts that has reply_count > 0). Narrow with oldest/latest timestamps.',
        input: z.strictObject({
          channel,
          limit: limit(1000, 20),
          oldest: ts('Only messages after this time').optional(),
          latest: ts('Only messages before this time').optional(),
          inclusive: z.boolean().optional().describe('Include messages exactly at oldest/latest'),
          cursor,
        }),
        annotations: READ,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).conversations.history({
            channel: a.channel,
            limit: a.limit,
            oldest: a.oldest,
            latest: a.latest,
            inclusive: a.inclusive,
            cursor: a.cursor,
          })
          return {
            messages: (r.messages ?? []).map(project.message),
            has_more: r.has_more ?? false,
            next_cursor: project.cursor(r),
          }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'get_thread_replies',
        title: 'Read a thread',
        description:
          'Returns a thread: its parent message followed by the replies, oldest first. thread_ts is the ts of the parent message.',
        input: z.strictObject({
          channel,
          thread_ts: ts('The parent message'),
          limit: limit(1000, 50),
          cursor,
        }),
        annotations: READ,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).conversations.replies({
            channel: a.channel,
            ts: a.thread_ts,
            limit: a.limit,
            cursor: a.cursor,
          })
          return {
            messages: (r.messages ?? []).map(project.message),
            has_more: r.has_more ?? false,
            next_cursor: project.cursor(r),
          }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'get_user_info',
        title: 'Get a user',
        description:
          'Returns a workspace member by user ID (as seen in messages, e.g. "U0123456789"): names, title, time zone, whether a bot or admin, and email when the token may read it.',
        input: z.strictObject({ user: z.string().min(1).describe('User ID, e.g. "U0123456789"') }),
        annotations: READ,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).users.info({ user: a.user })
          return project.user(r.user ?? {})
        },
      },
      slackFailure,
    ),
  ]
}
