import type Database from 'better-sqlite3'
import {
  parseEventId,
  type SessionEvent,
  type SessionRef,
  type SessionStore,
  type SessionSweep,
} from '../sessions.js'

const LIVE = 'key = ? AND tenant = ? AND owner = ? AND expires_at_ms > ?'

/** SQLite session store (src/store/sessions.ts); statements are prepared once. */
export class SqliteSessions implements SessionStore {
  private readonly q: Record<
    'open' | 'alive' | 'extend' | 'end' | 'dropEvents' | 'append' | 'streamOf' | 'after' | 'last',
    Database.Statement
  >

  constructor(private readonly db: Database.Database) {
    this.q = {
      open: db.prepare(
        'INSERT INTO mcp_sessions (key, tenant, owner, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      alive: db.prepare(`SELECT 1 FROM mcp_sessions WHERE ${LIVE}`),
      extend: db.prepare(`UPDATE mcp_sessions SET expires_at_ms = max(expires_at_ms, ?) WHERE ${LIVE}`),
      end: db.prepare(`DELETE FROM mcp_sessions WHERE ${LIVE}`),
      dropEvents: db.prepare('DELETE FROM mcp_session_events WHERE session = ?'),
      append: db.prepare(
        'INSERT INTO mcp_session_events (session, stream, message, created_at_ms) VALUES (?, ?, ?, ?)',
      ),
      streamOf: db.prepare(
        `SELECT e.stream FROM mcp_session_events e WHERE e.id = ? AND e.session = ?
           AND EXISTS (SELECT 1 FROM mcp_sessions WHERE ${LIVE})`,
      ),
      after: db.prepare(
        `SELECT e.id, e.stream, e.message FROM mcp_session_events e
         WHERE e.session = ? AND e.stream = ? AND e.id > ?
           AND EXISTS (SELECT 1 FROM mcp_sessions WHERE ${LIVE})
         ORDER BY e.id LIMIT ?`,
      ),
      last: db.prepare('SELECT max(id) AS id FROM mcp_session_events WHERE session = ? AND stream = ?'),
    }
  }

  async open(s: SessionRef, nowMs: number, expiresAtMs: number): Promise<void> {
    this.q.open.run(s.key, s.tenant, s.owner, nowMs, expiresAtMs)
  }

  async touch(s: SessionRef, nowMs: number, expiresAtMs?: number): Promise<boolean> {
    if (expiresAtMs === undefined) return this.q.alive.get(s.key, s.tenant, s.owner, nowMs) !== undefined
    return this.q.extend.run(expiresAtMs, s.key, s.tenant, s.owner, nowMs).changes === 1
  }

  async terminate(s: SessionRef, nowMs: number): Promise<boolean> {
    return this.db.transaction(() => {
      const ended = this.q.end.run(s.key, s.tenant, s.owner, nowMs).changes === 1
      if (ended) this.q.dropEvents.run(s.key)
      return ended
    })()
  }

  async appendEvent(s: SessionRef, stream: string, message: string, nowMs: number): Promise<string> {
    return String(this.q.append.run(s.key, stream, message, nowMs).lastInsertRowid)
  }

  async streamOf(s: SessionRef, eventId: string, nowMs: number): Promise<string | undefined> {
    const id = parseEventId(eventId)
    if (id === undefined) return undefined
    const row = this.q.streamOf.get(id, s.key, s.key, s.tenant, s.owner, nowMs) as
      { stream: string } | undefined
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
    const rows = this.q.after.all(s.key, stream, after, s.key, s.tenant, s.owner, nowMs, limit) as {
      id: number
      stream: string
      message: string
    }[]
    return rows.map((r) => ({ id: String(r.id), stream: r.stream, message: r.message }))
  }

  async lastEventId(s: SessionRef, stream: string): Promise<string> {
    const row = this.q.last.get(s.key, stream) as { id: number | null } | undefined
    return String(row?.id ?? 0)
  }

  async sweep(nowMs: number, opts: SessionSweep): Promise<{ sessions: number; events: number }> {
    return this.db.transaction(() => {
      const sessions = this.db.prepare('DELETE FROM mcp_sessions WHERE expires_at_ms <= ?').run(nowMs).changes
      let events = this.db
        .prepare(
          `DELETE FROM mcp_session_events WHERE created_at_ms < ?
             OR NOT EXISTS (SELECT 1 FROM mcp_sessions s WHERE s.key = mcp_session_events.session)`,
        )
        .run(nowMs - opts.maxEventAgeMs).changes
      events += this.db
        .prepare(
          `DELETE FROM mcp_session_events WHERE id IN (
             SELECT id FROM (
               SELECT id, row_number() OVER (PARTITION BY session, stream ORDER BY id DESC) AS n
               FROM mcp_session_events) WHERE n > ?)`,
        )
        .run(opts.perStream).changes
      return { sessions, events }
    })()
  }
}
