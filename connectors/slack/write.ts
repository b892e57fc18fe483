import { z } from 'zod'
import { defineTool } from '../tool.js'
import type { BuiltinTool } from '../types.js'
import { WRITE, channel, text, ts } from './args.js'
import { slackFailure, slackFor } from './client.js'

/** Tools that post to Slack as the user. */
export function writeTools(apiUrl: string): BuiltinTool[] {
  return [
    defineTool(
      {
        name: 'post_message',
        title: 'Post a message',
        description:
          'Posts a new message to a channel or DM as the current user. To answer inside a thread use reply_to_thread instead.',
        input: z.strictObject({
          channel,
          text,
          unfurl_links: z.boolean().default(false).describe('Show link previews'),
        }),
        annotations: WRITE,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).chat.postMessage({
            channel: a.channel,
            text: a.text,
            unfurl_links: a.unfurl_links,
          })
          return { channel: r.channel ?? a.channel, ts: r.ts ?? null }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'reply_to_thread',
        title: 'Reply in a thread',
        description:
          'Replies inside the thread of a message as the current user. thread_ts is the ts of the parent message (not of another reply). reply_broadcast also shows the reply in the channel.',
        input: z.strictObject({
          channel,
          thread_ts: ts('The parent message'),
          text,
          reply_broadcast: z.boolean().default(false).describe('Also post the reply to the channel'),
        }),
        annotations: WRITE,
        async call(a, ctx) {
          const r = await slackFor(ctx, apiUrl).chat.postMessage({
            channel: a.channel,
            thread_ts: a.thread_ts,
            text: a.text,
            reply_broadcast: a.reply_broadcast,
          })
          return { channel: r.channel ?? a.channel, ts: r.ts ?? null, thread_ts: a.thread_ts }
        },
      },
      slackFailure,
    ),
    defineTool(
      {
        name: 'add_reaction',
        title: 'React with an emoji',
        description:
          'Adds an emoji reaction to a message as the current user, e.g. name "thumbsup" or "eyes" (colons optional).',
        input: z.strictObject({
          channel,
          timestamp: ts('The message to react to'),
          name: z
            .string()
            .transform((s) => s.trim().replace(/^:|:$/g, ''))
            .pipe(z.string().min(1))
            .describe('Emoji name without colons, e.g. "thumbsup"'),
        }),
        annotations: { ...WRITE, idempotentHint: true },
        async call(a, ctx) {
          await slackFor(ctx, apiUrl).reactions.add({
            channel: a.channel,
            timestamp: a.timestamp,
            name: a.name,
          })
          return { channel: a.channel, timestamp: a.timestamp, name: a.name, added: true }
        },
      },
      slackFailure,
    ),
  ]
}
