import type Database from 'better-sqlite3'
import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import type { A2aStore, NewPushConfig, PushConfigRecord, RunStateMatch, TaskQuery } from '../a2a.js'
import { ownerOf, seesTenant } from '../owner.js'
import { decodeCursor, encodeCursor, nowIso } from '../scope.js'
import { PushRow, SEALED, toRecord } from '../rows/a2a.js'

/** SQL for one alternative of a state filter, with its arguments. */
function stateSql(m: RunStateMatch, args: (string | number)[]): string {
  const parts = ['status = ?']
  args.push(m.status)
  const list = (column: string, values: readonly string[], negate: boolean) => {
    if (!values.length) return
    const expr = `COALESCE(json_extract(${column}, '$.${column === 'error' ? 'code' : 'type'}'), '')`
    parts.push(`${expr} ${negate ? 'NOT IN' : 'IN'} (${values.map(() => '?').join(', ')})`)
    args.push(...values)
  }
  list('error', m.errorCodeIn ?? [], false)
  list('error', m.errorCodeNotIn ?? [], true)
  list('interrupt', m.interruptTypeIn ?? [], false)
  list('interrupt', m.interruptTypeNotIn ?? [], true)
  return `(${parts.join(' AND ')})`
}

export class SqliteA2a implements A2aStore {
  constructor(private readonly db: Database.Database) {}

  async putPushConfig(ctx: CallContext, c: NewPushConfig): Promise<PushConfigRecord> {
    for (const v of [c.sealedToken, c.sealedCredentials])
      if (v !== undefined && !SEALED.test(v))
        throw new GatewayError('bad_request', 'push notification secrets must be stored sealed')
    const now = nowIso()
    this.db
      .prepare(
        `INSERT INTO a2a_push_configs (tenant, task_id, id, url, token, auth_scheme, credentials, wire_version,
           notified_seq, last_state, done, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
         ON CONFLICT(tenant, task_id, id) DO UPDATE SET url = excluded.url, token = excluded.token,
           auth_scheme = excluded.auth_scheme, credentials = excluded.credentials,
           wire_version = excluded.wire_version, updated_at = excluded.updated_at`,
      )
      .run(
        ctx.tenant,
        c.taskId,
        c.id,
        c.url,
        c.sealedToken ?? null,
        c.authScheme ?? null,
        c.sealedCredentials ?? null,
        c.wireVersion,
        Math.max(0, Math.trunc(c.notifiedSeq)),
        c.lastState,
        now,
        now,
      )
    return (await this.pushConfigOf(ctx.tenant, c.taskId, c.id))!
  }

  async getPushConfig(ctx: CallContext, taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    return this.pushConfigOf(ctx.tenant, taskId, id)
  }

  async listPushConfigs(ctx: CallContext, taskId: string): Promise<PushConfigRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM a2a_push_configs WHERE tenant = ? AND task_id = ? ORDER BY created_at, id')
      .all(ctx.tenant, taskId) as PushRow[]
    return rows.map(toRecord)
  }

  async deletePushConfig(ctx: CallContext, taskId: string, id: string): Promise<boolean> {
    const res = this.db
      .prepare('DELETE FROM a2a_push_configs WHERE tenant = ? AND task_id = ? AND id = ?')
      .run(ctx.tenant, taskId, id)
    return res.changes > 0
  }

  async pushBacklog(limit: number): Promise<(PushConfigRecord & { runExists: boolean })[]> {
    const n = Math.min(Math.max(Math.trunc(limit), 1), 1000)
    const rows = this.db
      .prepare(
        `SELECT c.*, (SELECT COUNT(*) FROM runs r WHERE r.id = c.task_id AND r.tenant = c.tenant) AS run_exists
           FROM a2a_push_configs c
          WHERE c.done = 0
            AND (EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = c.task_id AND e.seq > c.notified_seq)
                 OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = c.task_id AND r.tenant = c.tenant))
          ORDER BY c.updated_at, c.task_id, c.id
          LIMIT ?`,
      )
      .all(n) as (PushRow & { run_exists: number })[]
    return rows.map((r) => ({ ...toRecord(r), runExists: r.run_exists > 0 }))
  }

  async pushConfigOf(tenant: string, taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    const row = this.db
      .prepare('SELECT * FROM a2a_push_configs WHERE tenant = ? AND task_id = ? AND id = ?')
      .get(tenant, taskId, id) as PushRow | undefined
    return row ? toRecord(row) : undefined
  }

  async advancePush(
    tenant: string,
    taskId: string,
    id: string,
    seq: number,
    lastState: string,
    done: boolean,
  ): Promise<void> {
    // Two dispatchers may handle the same config: the cursor only ever moves forward.
    this.db
      .prepare(
        `UPDATE a2a_push_configs SET notified_seq = ?, last_state = ?, done = MAX(done, ?), updated_at = ?
          WHERE tenant = ? AND task_id = ? AND id = ? AND notified_seq <= ?`,
      )
      .run(Math.trunc(seq), lastState, done ? 1 : 0, nowIso(), tenant, taskId, id, Math.trunc(seq))
  }

  async taskOfMessage(ctx: CallContext, messageId: string): Promise<string | undefined> {
    const row = this.db
      .prepare('SELECT task_id FROM a2a_messages WHERE tenant = ? AND owner = ? AND message_id = ?')
      .get(ctx.tenant, ownerOf(ctx), messageId) as { task_id: string } | undefined
    return row?.task_id
  }

  async rememberMessage(ctx: CallContext, messageId: string, taskId: string): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO a2a_messages (tenant, owner, message_id, task_id, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(tenant, owner, message_id) DO NOTHING`,
      )
      .run(ctx.tenant, ownerOf(ctx), messageId, taskId, nowIso())
  }

  async listTaskIds(
    ctx: CallContext,
    q: TaskQuery,
  ): Promise<{ ids: string[]; next?: string; total: number }> {
    const where = ['tenant = ?', 'agent = ?']
    const args: (string | number)[] = [ctx.tenant, q.agent]
    if (!seesTenant(ctx)) {
      where.push('owner = ?')
      args.push(ownerOf(ctx))
    }
    if (q.threadId !== undefined) {
      where.push('thread_id = ?')
      args.push(q.threadId)
    }
    if (q.states) {
      if (!q.states.length) return { ids: [], total: 0 }
      where.push(`(${q.states.map((s) => stateSql(s, args)).join(' OR ')})`)
    }
    if (q.updatedAfter !== undefined) {
      where.push('updated_at > ?')
      args.push(q.updatedAfter)
    }
    const total = (
      this.db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE ${where.join(' AND ')}`).get(...args) as {
        n: number
      }
    ).n
    const pageWhere = [...where]
    const pageArgs = [...args]
    if (q.pageToken) {
      const [at, seq] = decodeCursor(q.pageToken)
      if (typeof at !== 'string' || typeof seq !== 'number')
        throw new GatewayError('bad_request', 'invalid page token')
      pageWhere.push('(updated_at < ? OR (updated_at = ? AND seq < ?))')
      pageArgs.push(at, at, seq)
    }
    const size = Math.min(Math.max(Math.trunc(q.pageSize), 1), 100)
    const rows = this.db
      .prepare(
        `SELECT id, seq, updated_at FROM runs WHERE ${pageWhere.join(' AND ')}
          ORDER BY updated_at DESC, seq DESC LIMIT ?`,
      )
      .all(...pageArgs, size + 1) as { id: string; seq: number; updated_at: string }[]
    const page = rows.slice(0, size)
    const last = page[page.length - 1]
    return {
      ids: page.map((r) => r.id),
      ...(rows.length > size && last ? { next: encodeCursor([last.updated_at, last.seq]) } : {}),
      total,
    }
  }
}
