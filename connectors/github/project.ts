/**
 * Compact projections of GitHub REST payloads: what a model needs to act on, not the whole object
 * (URLs to every sub-resource, node ids and avatars are left out).
 */
type Json = Record<string, any>

export function user(u: Json | null | undefined): string | null {
  return u?.login ?? null
}

export function repository(r: Json): Json {
  return {
    full_name: r.full_name,
    description: r.description ?? null,
    private: r.private,
    html_url: r.html_url,
    default_branch: r.default_branch,
    language: r.language ?? null,
    stargazers_count: r.stargazers_count,
    forks_count: r.forks_count,
    open_issues_count: r.open_issues_count,
    archived: r.archived ?? false,
    topics: r.topics ?? [],
    updated_at: r.updated_at,
  }
}

function labels(list: unknown): string[] {
  if (!Array.isArray(list)) return []
  return list.map((l) => (typeof l === 'string' ? l : l?.name)).filter((n) => typeof n === 'string')
}

/** An issue in a list (no body); `pull_request` is true for pull requests, which GitHub lists as issues too. */
export function issueSummary(i: Json): Json {
  return {
    number: i.number,
    title: i.title,
    state: i.state,
    user: user(i.user),
    labels: labels(i.labels),
    assignees: (i.assignees ?? []).map(user),
    comments: i.comments,
    pull_request: i.pull_request !== undefined,
    html_url: i.html_url,
    created_at: i.created_at,
    updated_at: i.updated_at,
  }
}

export function issue(i: Json): Json {
  return {
    ...issueSummary(i),
    body: i.body ?? null,
    state_reason: i.state_reason ?? null,
    milestone: i.milestone?.title ?? null,
    closed_at: i.closed_at ?? null,
  }
}

export function comment(c: Json): Json {
  return { id: c.id, user: user(c.user), body: c.body, html_url: c.html_url, created_at: c.created_at }
}

export function pullSummary(p: Json): Json {
  return {
    number: p.number,
    title: p.title,
    state: p.state,
    draft: p.draft ?? false,
    user: user(p.user),
    head: p.head?.label ?? p.head?.ref,
    base: p.base?.ref,
    labels: labels(p.labels),
    html_url: p.html_url,
    created_at: p.created_at,
    updated_at: p.updated_at,
  }
}

export function pull(p: Json): Json {
  return {
    ...pullSummary(p),
    body: p.body ?? null,
    head_sha: p.head?.sha,
    merged: p.merged ?? false,
    mergeable: p.mergeable ?? null,
    mergeable_state: p.mergeable_state ?? null,
    merged_by: user(p.merged_by),
    merged_at: p.merged_at ?? null,
    closed_at: p.closed_at ?? null,
    comments: p.comments,
    review_comments: p.review_comments,
    commits: p.commits,
    additions: p.additions,
    deletions: p.deletions,
    changed_files: p.changed_files,
    requested_reviewers: (p.requested_reviewers ?? []).map(user),
  }
}
