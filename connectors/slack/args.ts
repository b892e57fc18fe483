import { z } from 'zod'

export const channel = z
  .string()
  .min(1)
  .describe('Channel ID, e.g. "C0123456789" (list_channels returns IDs); a DM is its D… ID')
export const ts = (what: string) =>
  z
    .string()
    .regex(/^\d+\.\d+$/, 'must be a Slack timestamp like "1700000000.000100"')
    .describe(`${what}: a Slack message timestamp such as "1700000000.000100"`)
export const cursor = z
  .string()
  .min(1)
  .optional()
  .describe('next_cursor from a previous result, for the next page')
export const limit = (max: number, fallback: number) =>
  z.number().int().min(1).max(max).default(fallback).describe(`Most items to return (1-${max})`)
export const text = z
  .string()
  .min(1)
  .max(40000)
  .describe(
    'Message text in Slack mrkdwn: *bold*, _italic_, `code`, <https://example.com|link>, <@U0123> mentions',
  )

export const READ = { readOnlyHint: true, destructiveHint: false, idempotentHint: true } as const
export const WRITE = { readOnlyHint: false, destructiveHint: false, idempotentHint: false } as const
