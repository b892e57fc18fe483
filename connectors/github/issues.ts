import { z } from 'zod'
import { defineTool } from '../tool.js'
import type { BuiltinTool } from '../types.js'
import { READ, WRITE, direction, number, owner, page, perPage, repo } from './args.js'
import { githubFailure, nextPage, octokitFor } from './client.js'
import { comment, issue, issueSummary } from './project.js'

/** Tools for issues and their comments. */
export function issueTools(baseUrl: string): BuiltinTool[] {
  return [
    defineTool(
      {
        name: 'list_issues',
        title: 'List issues',
        description:
          'Lists issues in a repository, newest first by default. GitHub counts pull requests as issues: those have pull_request: true. Filter by state, labels, assignee or creator.',
        input: z.strictObject({
          owner,
          repo,
          state: z.enum(['open', 'closed', 'all']).default('open').describe('Issue state'),
          labels: z.array(z.string().min(1)).optional().describe('Only issues carrying all of these labels'),
          assignee: z.string().min(1).optional().describe('A login, "none" for unassigned, "*" for any'),
          creator: z.string().min(1).optional().describe('Login of the issue author'),
          since: z.iso
            .datetime({ offset: true })
            .optional()
            .describe('Only issues updated at or after this ISO 8601 time'),
          sort: z
            .enum(['created', 'updated', 'comments'])
            .optional()
            .describe('Sort field (default created)'),
          direction,
          per_page: perPage,
          page,
        }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.issues.listForRepo({
            owner: a.owner,
            repo: a.repo,
            state: a.state,
            labels: a.labels?.join(','),
            assignee: a.assignee,
            creator: a.creator,
            since: a.since,
            sort: a.sort,
            direction: a.direction,
            per_page: a.per_page,
            page: a.page,
          })
          return { issues: res.data.map(issueSummary), next_page: nextPage(res.headers.link) ?? null }
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'get_issue',
        title: 'Get an issue',
        description:
          'Returns one issue (or pull request, as an issue) with its body; with include_comments, also its first 100 comments, oldest first.',
        input: z.strictObject({
          owner,
          repo,
          issue_number: number('issue'),
          include_comments: z.boolean().default(false).describe('Also return the comments'),
        }),
        annotations: READ,
        async call(a, ctx) {
          const octokit = octokitFor(ctx, baseUrl)
          const ref = { owner: a.owner, repo: a.repo, issue_number: a.issue_number }
          const res = await octokit.rest.issues.get(ref)
          if (!a.include_comments) return issue(res.data)
          const list = await octokit.rest.issues.listComments({ ...ref, per_page: 100 })
          return {
            ...issue(res.data),
            comment_list: list.data.map(comment),
            comments_truncated: nextPage(list.headers.link) !== undefined,
          }
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'create_issue',
        title: 'Create an issue',
        description:
          'Opens a new issue in a repository as the current user. Body is GitHub Markdown. Labels and assignees must exist in the repository or GitHub rejects the issue.',
        input: z.strictObject({
          owner,
          repo,
          title: z.string().min(1).describe('Issue title'),
          body: z.string().optional().describe('Issue body (Markdown)'),
          labels: z.array(z.string().min(1)).optional().describe('Label names'),
          assignees: z.array(z.string().min(1)).optional().describe('Logins to assign'),
          milestone: z.number().int().min(1).optional().describe('Milestone number'),
        }),
        annotations: WRITE,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.issues.create({
            owner: a.owner,
            repo: a.repo,
            title: a.title,
            body: a.body,
            labels: a.labels,
            assignees: a.assignees,
            milestone: a.milestone,
          })
          return issue(res.data)
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'add_issue_comment',
        title: 'Comment on an issue or pull request',
        description:
          'Adds a comment to an issue or pull request (pull requests share issue numbers) as the current user. Body is GitHub Markdown.',
        input: z.strictObject({
          owner,
          repo,
          issue_number: number('issue or pull request'),
          body: z.string().min(1).describe('Comment text (Markdown)'),
        }),
        annotations: WRITE,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.issues.createComment({
            owner: a.owner,
            repo: a.repo,
            issue_number: a.issue_number,
            body: a.body,
          })
          return comment(res.data)
        },
      },
      githubFailure,
    ),
  ]
}
