import { z } from 'zod'
import { defineTool } from '../tool.js'
import type { BuiltinTool } from '../types.js'
import { READ, owner, page, perPage, repo } from './args.js'
import { githubFailure, nextPage, octokitFor } from './client.js'
import { repository } from './project.js'
import { fileContents } from './contents.js'

/** Tools about the caller and repositories. */
export function repoTools(baseUrl: string): BuiltinTool[] {
  return [
    defineTool(
      {
        name: 'get_me',
        title: 'Who am I on GitHub',
        description:
          'Returns the GitHub account the current user connected: login, name, email and profile, and the OAuth scopes the token holds. Call it to learn whose repositories "my" refers to.',
        input: z.strictObject({}),
        annotations: READ,
        async call(_args, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.users.getAuthenticated()
          const u = res.data
          const scopes = res.headers['x-oauth-scopes']
          return {
            login: u.login,
            id: u.id,
            name: u.name ?? null,
            email: u.email ?? null,
            company: u.company ?? null,
            bio: u.bio ?? null,
            type: u.type,
            html_url: u.html_url,
            public_repos: u.public_repos,
            created_at: u.created_at,
            scopes:
              typeof scopes === 'string'
                ? scopes
                    .split(',')
                    .map((s) => s.trim())
                    .filter(Boolean)
                : null,
          }
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'search_repositories',
        title: 'Search repositories',
        description:
          'Searches GitHub repositories with GitHub search syntax, e.g. "gateway language:typescript stars:>100", "org:acme topic:mcp" or "user:octocat". Returns matching repositories, most relevant first.',
        input: z.strictObject({
          query: z.string().min(1).describe('GitHub repository search query (qualifiers allowed)'),
          sort: z
            .enum(['stars', 'forks', 'help-wanted-issues', 'updated'])
            .optional()
            .describe('Sort field; default is best match'),
          order: z.enum(['asc', 'desc']).optional().describe('Sort order when sort is given'),
          per_page: perPage,
          page,
        }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.search.repos({
            q: a.query,
            sort: a.sort,
            order: a.order,
            per_page: a.per_page,
            page: a.page,
          })
          return {
            total_count: res.data.total_count,
            incomplete_results: res.data.incomplete_results,
            items: res.data.items.map(repository),
            next_page: nextPage(res.headers.link) ?? null,
          }
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'get_repository',
        title: 'Get a repository',
        description:
          'Returns one repository: description, visibility, default branch, language, stars, forks, open issue count and topics.',
        input: z.strictObject({ owner, repo }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.repos.get({ owner: a.owner, repo: a.repo })
          return repository(res.data)
        },
      },
      githubFailure,
    ),
    defineTool(
      {
        name: 'get_file_contents',
        title: 'Read a file or directory',
        description:
          'Reads a file (UTF-8 text) or lists a directory in a repository at a branch, tag or commit. An empty path lists the repository root. Binary files and files over 1 MB are described, not returned.',
        input: z.strictObject({
          owner,
          repo,
          path: z
            .string()
            .default('')
            .describe('Path inside the repository, e.g. "src/index.ts"; "" for the root'),
          ref: z
            .string()
            .min(1)
            .optional()
            .describe('Branch, tag or commit SHA; default: the default branch'),
        }),
        annotations: READ,
        async call(a, ctx) {
          const res = await octokitFor(ctx, baseUrl).rest.repos.getContent({
            owner: a.owner,
            repo: a.repo,
            path: a.path.replace(/^\/+|\/+$/g, ''),
            ref: a.ref,
          })
          return fileContents(res.data)
        },
      },
      githubFailure,
    ),
  ]
}
