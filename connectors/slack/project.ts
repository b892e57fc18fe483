/** Compact projections of Slack Web API payloads. */
type Json = Record<string, any>

export function channel(c: Json): Json {
  return {
    id: c.id,
    name: c.name ?? null,
    is_private: c.is_private ?? false,
    is_archived: c.is_archived ?? false,
    is_member: c.is_member ?? null,
    is_im: c.is_im ?? false,
    is_mpim: c.is_mpim ?? false,
    user: c.user ?? null,
    topic: c.topic?.value || null,
    purpose: c.purpose?.value || null,
    num_members: c.num_members ?? null,
  }
}

export function message(m: Json): Json {
  return {
    ts: m.ts,
    user: m.user ?? null,
    bot_id: m.bot_id ?? null,
    subtype: m.subtype ?? null,
    text: m.text ?? '',
    thread_ts: m.thread_ts ?? null,
    reply_count: m.reply_count ?? 0,
    reactions: (m.reactions ?? []).map((r: Json) => ({ name: r.name, count: r.count })),
    files: (m.files ?? []).map((f: Json) => ({ name: f.name ?? null, title: f.title ?? null })),
  }
}

export function user(u: Json): Json {
  const p: Json = u.profile ?? {}
  return {
    id: u.id,
    name: u.name,
    real_name: u.real_name ?? p.real_name ?? null,
    display_name: p.display_name || null,
    title: p.title || null,
    email: p.email ?? null,
    tz: u.tz ?? null,
    is_bot: u.is_bot ?? false,
    is_admin: u.is_admin ?? false,
    deleted: u.deleted ?? false,
    team_id: u.team_id ?? null,
  }
}

/** Slack answers "" when there is no next page; callers get null. */
export function cursor(r: { response_metadata?: { next_cursor?: string } }): string | null {
  return r.response_metadata?.next_cursor || null
}
