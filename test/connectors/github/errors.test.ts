import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BUILTIN_CONNECTORS, UpstreamAuthError } from '../../../connectors/index.js'
import { missingScopes } from '../../../connectors/github/client.js'
import { retryAfterSeconds } from '../../../connectors/tool.js'
import { start, type GithubFake } from '../../fixtures/github-api.mjs'
import { caller, errorText, toolMap } from '../helpers.js'

let fake: GithubFake
let as: ReturnType<typeof caller>

beforeAll(async () => {
  fake = await start()
  as = caller(toolMap(BUILTIN_CONNECTORS.github!, fake.url))
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

describe('github argument validation', () => {
  it('names every bad field and sends nothing upstream', async () => {
    const before = fake.state.requests.length
    const text = errorText(await as('gho_alice')('create_issue', { owner: 'acme', repo: 7, titel: 'x' }))
    expect(text).toMatch(/^Invalid arguments for create_issue: /)
    expect(text).toContain('repo: Invalid input: expected string, received number')
    expect(text).toContain('title: Invalid input: expected string, received undefined')
    expect(text).toContain('Unrecognized key: "titel"')
    expect(
      errorText(await as('gho_alice')('list_issues', { owner: 'acme', repo: 'widgets', per_page: 500 })),
    ).toContain('per_page: Too big')
    expect(
      errorText(await as('gho_alice')('get_issue', { owner: 'acme', repo: 'widgets', issue_number: 1.5 })),
    ).toContain('issue_number')
    expect(fake.state.requests.length).toBe(before)
  })
})

describe('github error mapping', () => {
  it('401 Bad credentials → UpstreamAuthError 401 without the token', async () => {
    const err = await authError(as('gho_revoked_0123456789')('get_me'))
    expect(err.status).toBe(401)
    expect(err.message).toBe('GitHub refused the token: Bad credentials')
    expect(err.message).not.toContain('gho_revoked')
  })

  it('403 with X-Accepted-OAuth-Scopes the token lacks → UpstreamAuthError 403 with the scopes', async () => {
    const err = await authError(
      as('gho_carol')('create_issue', { owner: 'acme', repo: 'widgets', title: 'Hi' }),
    )
    expect(err.status).toBe(403)
    expect(err.scopes).toEqual(['public_repo', 'repo'])
    expect(err.message).toContain('public_repo, repo')
    expect(fake.state.requests.at(-1)!.authorization).toBe('token gho_carol')
  })

  it('a 403 that is not about scopes is a tool error with GitHub’s message', async () => {
    fake.state.failNext({
      status: 403,
      headers: { 'x-oauth-scopes': 'repo', 'x-accepted-oauth-scopes': 'repo' },
      body: { message: 'Repository access blocked', documentation_url: 'https://docs.github.com/rest' },
    })
    const text = errorText(await as('gho_alice')('get_repository', { owner: 'acme', repo: 'widgets' }))
    expect(text).toBe('GitHub API error 403: Repository access blocked')
  })

  it('404 for a repository the caller cannot see', async () => {
    const text = errorText(await as('gho_bob')('get_repository', { owner: 'alice', repo: 'notes' }))
    expect(text).toBe('GitHub API error 404: Not Found')
    const ref = errorText(
      await as('gho_alice')('get_file_contents', { owner: 'acme', repo: 'widgets', ref: 'nope' }),
    )
    expect(ref).toBe('GitHub API error 404: No commit found for the ref nope')
  })

  it('422 Validation Failed spells out the field errors', async () => {
    const text = errorText(
      await as('gho_alice')('create_issue', {
        owner: 'acme',
        repo: 'widgets',
        title: 'x',
        assignees: ['nobody'],
      }),
    )
    expect(text).toBe('GitHub API error 422: Validation Failed: assignees invalid ("nobody")')
  })

  it('rate limits report when to retry and are not retried', async () => {
    const before = fake.state.requests.length
    fake.state.failNext({
      status: 403,
      headers: { 'retry-after': '30' },
      body: { message: 'You have exceeded a secondary rate limit.' },
    })
    expect(errorText(await as('gho_alice')('get_me'))).toBe(
      'GitHub rate limit (HTTP 403): You have exceeded a secondary rate limit. Retry after 30 seconds (Retry-After).',
    )
    const reset = Math.floor(Date.now() / 1000) + 120
    fake.state.failNext({
      status: 403,
      headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) },
      body: { message: 'API rate limit exceeded for user ID 1001.' },
    })
    expect(errorText(await as('gho_alice')('get_me'))).toMatch(
      /^GitHub rate limit \(HTTP 403\): API rate limit exceeded for user ID 1001\. Retry after 1(19|20|21) seconds \(limit resets at /,
    )
    fake.state.failNext({
      status: 429,
      headers: { 'retry-after': '7' },
      body: { message: 'Too many requests' },
    })
    expect(errorText(await as('gho_alice')('get_me'))).toContain('Retry after 7 seconds')
    expect(fake.state.requests.length).toBe(before + 3)
  })

  it('an unreachable API is a tool error naming the cause', async () => {
    const closed = await start()
    const url = closed.url
    await closed.close()
    const tools = toolMap(BUILTIN_CONNECTORS.github!, url)
    const text = errorText(await caller(tools)('gho_alice')('get_me'))
    expect(text).toMatch(/^GitHub API unreachable: .*ECONNREFUSED/)
  })

  it('never returns the token, even when the upstream echoes it', async () => {
    const token = 'gho_alice'
    fake.state.failNext({ status: 400, body: { message: `Problems parsing token ${token}` } })
    const text = errorText(await as(token)('get_me'))
    expect(text).toBe('GitHub API error 400: Problems parsing token [redacted]')
    fake.state.failNext({ status: 401, body: { message: `Token ${token} is expired` } })
    const auth = await authError(as(token)('get_me'))
    expect(auth.message).toBe('GitHub refused the token: Token [redacted] is expired')
    for (const [name, args] of [
      ['get_me', {}],
      ['get_issue', { owner: 'acme', repo: 'widgets', issue_number: 1, include_comments: true }],
      ['get_issue', { owner: 'acme', repo: 'widgets', issue_number: 999 }],
    ] as const) {
      const r = await as(token)(name, args)
      expect(JSON.stringify(r)).not.toContain(token)
    }
  })
})

describe('missingScopes', () => {
  it('counts scopes implied by broader ones as held', () => {
    expect(
      missingScopes({ 'x-oauth-scopes': 'repo', 'x-accepted-oauth-scopes': 'public_repo' }),
    ).toBeUndefined()
    expect(
      missingScopes({ 'x-oauth-scopes': 'admin:org', 'x-accepted-oauth-scopes': 'read:org' }),
    ).toBeUndefined()
    expect(missingScopes({ 'x-oauth-scopes': 'read:user', 'x-accepted-oauth-scopes': 'repo' })).toEqual([
      'repo',
    ])
    expect(missingScopes({ 'x-oauth-scopes': '', 'x-accepted-oauth-scopes': 'read:org, admin:org' })).toEqual(
      ['read:org', 'admin:org'],
    )
    // No scope headers (a GitHub App token): the 403 is not about OAuth scopes.
    expect(missingScopes({ 'x-accepted-oauth-scopes': 'repo' })).toBeUndefined()
    expect(missingScopes({ 'x-oauth-scopes': 'repo', 'x-accepted-oauth-scopes': '' })).toBeUndefined()
  })
})

describe('retryAfterSeconds', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-05T10:00:00Z')
    expect(retryAfterSeconds('12', now)).toBe(12)
    expect(retryAfterSeconds('Mon, 05 Jan 2026 10:01:30 GMT', now)).toBe(90)
    expect(retryAfterSeconds('Mon, 05 Jan 2026 09:00:00 GMT', now)).toBe(0)
    expect(retryAfterSeconds('soon', now)).toBeUndefined()
    expect(retryAfterSeconds(undefined, now)).toBeUndefined()
  })
})
