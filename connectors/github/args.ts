import { z } from 'zod'

/** Argument pieces shared by the GitHub tools; descriptions are what the model reads. */
export const owner = z
  .string()
  .min(1)
  .describe('Repository owner: a user or organisation login, e.g. "octocat"')
export const repo = z.string().min(1).describe('Repository name without the owner, e.g. "hello-world"')
export const perPage = z.number().int().min(1).max(100).default(30).describe('Results per page (1-100)')
export const page = z
  .number()
  .int()
  .min(1)
  .default(1)
  .describe('Page number, starting at 1; use next_page from a previous result')
export const direction = z.enum(['asc', 'desc']).optional().describe('Sort direction')
export const number = (what: string) => z.number().int().min(1).describe(`The ${what} number`)

export const READ = { readOnlyHint: true, destructiveHint: false, idempotentHint: true } as const
export const WRITE = { readOnlyHint: false, destructiveHint: false, idempotentHint: false } as const
