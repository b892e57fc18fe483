import {
  parseEventId,
  type SessionEvent,
  type SessionRef,
  type SessionStore,
  type SessionSweep,
} from '../sessions.js'
import type { Db } from './db.js'

/** The PostgreSQL session store (src/store/sessions.ts): what replicas share of 2025-era MCP sessions. */
export class PgSessions implements SessionStore {
  constructor(private readonly db: Db) {}

  async open(s: SessionRef, nowMs: number, expiresAtMs: number): Promise<void> {
    await this.db.count(
      `INSERT INTO mcp_sessions (key, tenant, owner, created_at_ms, expires_at_ms)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [s.key, s.tenant, s.owner, nowMs, expiresAtMs],
    )
  }

  async touch(s: SessionRef, nowMs: number, expiresAtMs?: number): Promise<boolean> {
    if (expiresAtMs === undefined) {
      const row = await this.db.one(
        'SELECT 1 FROM mcp_sessions WHERE key = $1 AND tenant = $2 AND owner = $3 AND expires_at_ms > $4',
        [s.key, s.tenant, s.owner, nowMs],
      )
      return row !== undefined
    }
    const n = await this.db.count(
      `UPDATE mcp_sessions SET expires_at_ms = greatest(expires_at_ms, $5)
       WHERE key = $1 AND tenant = $2 AND owner = $3 AND expires_at_ms > $4`,
      [s.key, s.tenant, s.owner, nowMs, expiresAtMs],
    )
    return n === 1
  }

  async terminate(s: SessionRef, nowMs: number): Promise<boolean> {
    return this.db.tx(async (c) => {
      const n = await this.db.count(
        'DELETE FROM mcp_sessions WHERE key = $1 AND tenant = $2 AND owner = $3 AND expires_at_ms > $4',
        [s.key, s.tenant, s.owner, nowMs],
        c,
      )
      if (n === 1) await this.db.count('DELETE FROM mcp_session_events WHERE session = $1', [s.key], c)
      return n === 1
    })
  }

  async appendEvent(s: SessionRef, stream: string, message: string, nowMs: number): Promise<string> {
    const row = await this.db.one<{ id: number }>(
      `INSERT INTO mcp_session_events (session, stream, message, created_at_ms)
       VALUES ($1, $2, $3, $4) RETURNING id`,
      [s.key, stream, message, nowMs],
    )
    return String(row!.id)
  }

  async streamOf(s: SessionRef, eventId: string, nowMs: number): Promise<string | undefined> {
    const id = parseEventId(eventId)
    if (id === undefined) return undefined
    const row = await this.db.one<{ stream: string }>(
      `SELECT e.stream FROM mcp_session_events e JOIN mcp_sessions s ON s.key = e.session
       WHERE e.id = $1 AND e.session = $2 AND s.tenant = $3 AND s.owner = $4 AND s.expires_at_ms > $5`,
      [id, s.key, s.tenant, s.owner, nowMs],
    )
    return row?.stream
  }

  async eventsAfter(
    s: SessionRef,
    stream: string,
    afterId: string,
    nowMs: number,
    limit = 1000,
  ): Promise<SessionEvent[]> {
    const after = afterId === '0' ? 0 : parseEventId(afterId)
    if (after === undefined) return []
    const rows = await this.db.rows<{ id: number; stream: string; message: string }>(
      `SELECT e.id, e.stream, e.message FROM mcp_session_events e JOIN mcp_sessions s ON s.key = e.session
       WHERE e.session = $1 AND e.stream = $2 AND e.id > $3
         AND s.tenant = $4 AND s.owner = $5 AND s.expires_at_ms > $6
       ORDER BY e.id LIMIT $7`,
      [s.key, stream, after, s.tenant, s.owner, nowMs, limit],
    )
    return rows.map((r) => ({ id: String(r.id), stream: r.stream, message: r.message }))
  }

  async lastEventId(s: SessionRef, stream: string): Promise<string> {
    const row = await this.db.one<{ id: number | null }>(
      'SELECT max(id) AS id FROM mcp_session_events WHERE session = $1 AND stream = $2',
      [s.key, stream],
    )
    return String(row?.id ?? 0)
  }

  async sweep(nowMs: number, opts: SessionSweep): Promise<{ sessions: number; events: number }> {
    const sessions = await this.db.count('DELETE FROM mcp_sessions WHERE expires_at_ms <= $1', [nowMs])
    let events = await this.db.count(
      `DELETE FROM mcp_session_events e WHERE e.created_at_ms < $1
         OR NOT EXISTS (SELECT 1 FROM mcp_sessions s WHERE s.key = e.session)`,
      [nowMs - opts.maxEventAgeMs],
    )
    events += await this.db.count(
      `DELETE FROM mcp_session_events WHERE id IN (
         SELECT id FROM (
           SELECT id, row_number() OVER (PARTITION BY session, stream ORDER BY id DESC) AS n
           FROM mcp_session_events) t WHERE t.n > $1)`,
      [opts.perStream],
    )
    return { sessions, events }
  }
}
