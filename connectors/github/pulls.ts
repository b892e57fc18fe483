import { z } from 'zod'
import { defineTool } from '../tool.js'
import type { BuiltinTool } from '../types.js'
import { READ, direction, number, owner, page, perPage, repo } from './args.js'
import { githubFailure, nextPage, octokitFor } from './client.js'
import { pull, pullSummary } from './project.js'

/** Tools for pull requests. */
export function pullTools(baseUrl: string): BuiltinTool[] {
  return [
    defineTool(
      {
        name: 'list_pull_requests',
        title: 'List pull requests',
        description:
          'Lists pull requests in a repository, filtered by state, head branch ("user:branch") or base branch.',
        input: z.strictObject({
          owner,
          repo,
          state: z.enum(['open', 'closed', 'all']).default('open').describe('Pull request state'),
          head: z.string().min(1).optional().describe('Head branch as "user:branch" or "org:branch"'),
          base: z.string().min(1).optional().describe('Base branch name, e.g. "main"'),
          sort: z
            .enum(['created', 'updated', 'popularity', 'long-running'])
            .optional()
            .describe('Sort field (default created)'),
          direction,
          per_page: perPage,
          page,
        }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.pulls.list({
            owner: a.owner,
            repo: a.repo,
            state: a.state,
            head: a.head,
            base: a.base,
            sort: a.sort,
            direction: a.direction,
            per_page: a.per_page,
            page: a.page,
          })
          return { pull_requests: res.data.map(pullSummary), next_page: nextPage(res.headers.link) ?? null }
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'get_pull_request',
        title: 'Get a pull request',
        description:
          'Returns one pull request: body, head and base branches, head SHA, draft, merge state, reviewers and the size of the change (commits, additions, deletions, changed files).',
        input: z.strictObject({ owner, repo, pull_number: number('pull request') }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.pulls.get({
            owner: a.owner,
            repo: a.repo,
            pull_number: a.pull_number,
          })
          return pull(res.data)
        },
      },
      githubFailure,
    ),
  ]
}
