import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS } from '../../../connectors/index.js'
import { start, type GithubFake } from '../../fixtures/github-api.mjs'
import { caller, data, toolMap } from '../helpers.js'

let fake: GithubFake
let alice: ReturnType<ReturnType<typeof caller>>

beforeAll(async () => {
  fake = await start()
  alice = caller(toolMap(BUILTIN_CONNECTORS.github!, fake.url))('gho_alice')
})
afterAll(() => fake.close())

describe('github tools against the REST fake', () => {
  it('lists the tools the brief names, with object input schemas and annotations', () => {
    const tools = BUILTIN_CONNECTORS.github!.tools({ baseUrl: fake.url })
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        'add_issue_comment',
        'create_issue',
        'get_file_contents',
        'get_issue',
        'get_me',
        'get_pull_request',
        'get_repository',
        'list_issues',
        'list_pull_requests',
        'search_repositories',
      ].sort(),
    )
    for (const t of tools) {
      expect(t.name).toMatch(/^[a-z0-9_]+$/)
      expect(t.inputSchema.type).toBe('object')
      expect(t.inputSchema.$schema).toBeUndefined()
      expect(t.description.length).toBeGreaterThan(40)
      expect(t.annotations?.openWorldHint).toBe(true)
    }
    const byName = new Map(tools.map((t) => [t.name, t]))
    expect(byName.get('create_issue')!.annotations?.readOnlyHint).toBe(false)
    expect(byName.get('get_issue')!.annotations?.readOnlyHint).toBe(true)
    expect((byName.get('create_issue')!.inputSchema.required as string[]).sort()).toEqual([
      'owner',
      'repo',
      'title',
    ])
  })

  it('get_me returns the token owner and the scopes GitHub reports', async () => {
    const me = data(await alice('get_me'))
    expect(me).toMatchObject({
      login: 'alice',
      name: 'Alice Liddell',
      email: 'alice@example.com',
      type: 'User',
    })
    expect(me.scopes).toEqual(['repo', 'read:user'])
    const req = fake.state.requests.at(-1)!
    expect(req).toMatchObject({
      method: 'GET',
      path: '/user',
      authorization: 'token gho_alice',
      apiVersion: '2022-11-28',
    })
  })

  it('search_repositories passes the query and pages with next_page', async () => {
    const first = data(await alice('search_repositories', { query: 'widgets', per_page: 1 }))
    expect(first.total_count).toBe(1)
    expect(first.items[0]).toMatchObject({
      full_name: 'acme/widgets',
      default_branch: 'main',
      private: false,
    })
    expect(first.items[0].owner).toBeUndefined() // projected, not the whole payload
    expect(first.next_page).toBeNull()
    expect(fake.state.requests.at(-1)!.query).toMatchObject({ q: 'widgets', per_page: '1', page: '1' })
    const all = data(await alice('search_repositories', { query: 'user:alice' }))
    expect(all.items.map((r: any) => r.full_name)).toEqual(['alice/notes'])
  })

  it('get_repository projects the repository', async () => {
    const r = data(await alice('get_repository', { owner: 'acme', repo: 'widgets' }))
    expect(r).toEqual({
      full_name: 'acme/widgets',
      description: 'Wobble-free widgets',
      private: false,
      html_url: 'https://github.example/acme/widgets',
      default_branch: 'main',
      language: 'TypeScript',
      stargazers_count: 42,
      forks_count: 1,
      open_issues_count: 3,
      archived: false,
      topics: ['widgets', 'mcp'],
      updated_at: '2026-01-05T11:00:00Z',
    })
  })

  it('list_issues filters, marks pull requests and follows Link pagination', async () => {
    const page1 = data(await alice('list_issues', { owner: 'acme', repo: 'widgets', per_page: 2 }))
    expect(page1.issues.map((i: any) => i.number)).toEqual([3, 2])
    expect(page1.issues[0].pull_request).toBe(true)
    expect(page1.next_page).toBe(2)
    const page2 = data(
      await alice('list_issues', { owner: 'acme', repo: 'widgets', per_page: 2, page: page1.next_page }),
    )
    expect(page2.issues.map((i: any) => i.number)).toEqual([1])
    expect(page2.next_page).toBeNull()
    const bugs = data(
      await alice('list_issues', {
        owner: 'acme',
        repo: 'widgets',
        state: 'all',
        labels: ['bug'],
        direction: 'asc',
      }),
    )
    expect(bugs.issues.map((i: any) => i.number)).toEqual([1, 3])
    expect(fake.state.requests.at(-1)!.query).toMatchObject({ state: 'all', labels: 'bug', direction: 'asc' })
    const closed = data(await alice('list_issues', { owner: 'acme', repo: 'widgets', state: 'closed' }))
    expect(closed.issues).toEqual([expect.objectContaining({ number: 4, state: 'closed', user: 'bob' })])
  })

  it('get_issue returns the body and, on request, the comments', async () => {
    const plain = data(await alice('get_issue', { owner: 'acme', repo: 'widgets', issue_number: 1 }))
    expect(plain).toMatchObject({
      number: 1,
      title: 'Widgets wobble',
      body: 'They wobble on Tuesdays.',
      labels: ['bug'],
      assignees: ['alice'],
      user: 'bob',
      comments: 1,
    })
    expect(plain.comment_list).toBeUndefined()
    const full = data(
      await alice('get_issue', { owner: 'acme', repo: 'widgets', issue_number: 1, include_comments: true }),
    )
    expect(full.comment_list).toEqual([
      expect.objectContaining({ id: 5001, user: 'alice', body: 'Confirmed.' }),
    ])
    expect(full.comments_truncated).toBe(false)
  })

  it('create_issue sends the fields and returns the new issue', async () => {
    const created = data(
      await alice('create_issue', {
        owner: 'acme',
        repo: 'widgets',
        title: 'Widgets squeak',
        body: 'Since 2.0',
        labels: ['bug'],
        assignees: ['bob'],
      }),
    )
    expect(created).toMatchObject({
      number: 5,
      title: 'Widgets squeak',
      user: 'alice',
      labels: ['bug'],
      assignees: ['bob'],
    })
    expect(fake.state.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: '/repos/acme/widgets/issues',
      body: { title: 'Widgets squeak', body: 'Since 2.0', labels: ['bug'], assignees: ['bob'] },
    })
  })

  it('add_issue_comment comments as the caller', async () => {
    const c = data(
      await alice('add_issue_comment', { owner: 'acme', repo: 'widgets', issue_number: 2, body: '+1' }),
    )
    expect(c).toMatchObject({ user: 'alice', body: '+1' })
    expect(c.html_url).toContain('/issues/2#issuecomment-')
    expect(fake.state.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: '/repos/acme/widgets/issues/2/comments',
    })
  })

  it('list_pull_requests and get_pull_request', async () => {
    const list = data(await alice('list_pull_requests', { owner: 'acme', repo: 'widgets', base: 'main' }))
    expect(list.pull_requests).toEqual([
      expect.objectContaining({
        number: 3,
        head: 'alice:fix-wobble',
        base: 'main',
        draft: false,
        user: 'alice',
      }),
    ])
    expect(list.next_page).toBeNull()
    const none = data(
      await alice('list_pull_requests', { owner: 'acme', repo: 'widgets', head: 'bob:nothing' }),
    )
    expect(none.pull_requests).toEqual([])
    const pr = data(await alice('get_pull_request', { owner: 'acme', repo: 'widgets', pull_number: 3 }))
    expect(pr).toMatchObject({
      number: 3,
      body: 'Fixes #1.',
      head_sha: 'a1b2c3d4e5f6',
      mergeable: true,
      additions: 12,
      deletions: 3,
      requested_reviewers: ['bob'],
    })
  })

  it('get_file_contents decodes text, lists directories, honours ref and describes binaries', async () => {
    const readme = data(
      await alice('get_file_contents', { owner: 'acme', repo: 'widgets', path: 'README.md' }),
    )
    expect(readme).toMatchObject({
      type: 'file',
      encoding: 'utf-8',
      content: '# Widgets\n\nWobble-free widgets.\n',
    })
    const nested = data(
      await alice('get_file_contents', { owner: 'acme', repo: 'widgets', path: '/src/index.js' }),
    )
    expect(nested.content).toBe("export const widget = 'ok'\n")
    expect(fake.state.requests.at(-1)!.path).toBe('/repos/acme/widgets/contents/src/index.js')
    const root = data(await alice('get_file_contents', { owner: 'acme', repo: 'widgets' }))
    expect(root.type).toBe('dir')
    expect(root.entries.map((e: any) => `${e.type}:${e.path}`).sort()).toEqual([
      'dir:src',
      'file:README.md',
      'file:logo.png',
    ])
    const dev = data(
      await alice('get_file_contents', { owner: 'acme', repo: 'widgets', path: 'README.md', ref: 'dev' }),
    )
    expect(dev.content).toBe('# Widgets (dev)\n')
    expect(fake.state.requests.at(-1)!.query.ref).toBe('dev')
    const png = data(await alice('get_file_contents', { owner: 'acme', repo: 'widgets', path: 'logo.png' }))
    expect(png).toMatchObject({ type: 'file', content: null, size: 11 })
    expect(png.note).toMatch(/Binary/)
  })
})
