import type { CallContext } from '../../context.js'
import { GatewayError } from '../../errors.js'
import type { A2aStore, NewPushConfig, PushConfigRecord, RunStateMatch, TaskQuery } from '../a2a.js'
import { ownerOf, seesTenant } from '../owner.js'
import { decodeCursor, encodeCursor, nowIso } from '../scope.js'
import type { Db } from './db.js'
import { PushRow, SEALED, toRecord } from '../rows/a2a.js'

/** SQL for one alternative of a state filter; its arguments go into `args`. */
function stateSql(m: RunStateMatch, args: unknown[]): string {
  args.push(m.status)
  const parts = [`status = $${args.length}`]
  const list = (column: 'error' | 'interrupt', values: readonly string[], negate: boolean) => {
    if (!values.length) return
    args.push([...values])
    const field = column === 'error' ? 'code' : 'type'
    const expr = `COALESCE(${column}::json ->> '${field}', '')`
    parts.push(`${negate ? 'NOT ' : ''}(${expr} = ANY($${args.length}::text[]))`)
  }
  list('error', m.errorCodeIn ?? [], false)
  list('error', m.errorCodeNotIn ?? [], true)
  list('interrupt', m.interruptTypeIn ?? [], false)
  list('interrupt', m.interruptTypeNotIn ?? [], true)
  return `(${parts.join(' AND ')})`
}

export class PgA2a implements A2aStore {
  constructor(private readonly db: Db) {}

  async putPushConfig(ctx: CallContext, c: NewPushConfig): Promise<PushConfigRecord> {
    for (const v of [c.sealedToken, c.sealedCredentials])
      if (v !== undefined && !SEALED.test(v))
        throw new GatewayError('bad_request', 'push notification secrets must be stored sealed')
    const row = await this.db.one<PushRow>(
      `INSERT INTO a2a_push_configs (tenant, task_id, id, url, token, auth_scheme, credentials, wire_version,
         notified_seq, last_state, done, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false, $11, $11)
       ON CONFLICT (tenant, task_id, id) DO UPDATE SET url = excluded.url, token = excluded.token,
         auth_scheme = excluded.auth_scheme, credentials = excluded.credentials,
         wire_version = excluded.wire_version, updated_at = excluded.updated_at
       RETURNING *`,
      [
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
        nowIso(),
      ],
    )
    return toRecord(row!)
  }

  async getPushConfig(ctx: CallContext, taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    return this.pushConfigOf(ctx.tenant, taskId, id)
  }

  async listPushConfigs(ctx: CallContext, taskId: string): Promise<PushConfigRecord[]> {
    const rows = await this.db.rows<PushRow>(
      'SELECT * FROM a2a_push_configs WHERE tenant = $1 AND task_id = $2 ORDER BY created_at, id',
      [ctx.tenant, taskId],
    )
    return rows.map(toRecord)
  }

  async deletePushConfig(ctx: CallContext, taskId: string, id: string): Promise<boolean> {
    const n = await this.db.count(
      'DELETE FROM a2a_push_configs WHERE tenant = $1 AND task_id = $2 AND id = $3',
      [ctx.tenant, taskId, id],
    )
    return n > 0
  }

  async pushBacklog(limit: number): Promise<(PushConfigRecord & { runExists: boolean })[]> {
    const n = Math.min(Math.max(Math.trunc(limit), 1), 1000)
    const rows = await this.db.rows<PushRow & { run_exists: boolean }>(
      `SELECT c.*, EXISTS (SELECT 1 FROM runs r WHERE r.id = c.task_id AND r.tenant = c.tenant) AS run_exists
         FROM a2a_push_configs c
        WHERE NOT c.done
          AND (EXISTS (SELECT 1 FROM run_events e WHERE e.run_id = c.task_id AND e.seq > c.notified_seq)
               OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = c.task_id AND r.tenant = c.tenant))
        ORDER BY c.updated_at, c.task_id, c.id
        LIMIT $1`,
      [n],
    )
    return rows.map((r) => ({ ...toRecord(r), runExists: r.run_exists }))
  }

  async pushConfigOf(tenant: string, taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    const row = await this.db.one<PushRow>(
      'SELECT * FROM a2a_push_configs WHERE tenant = $1 AND task_id = $2 AND id = $3',
      [tenant, taskId, id],
    )
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
    await this.db.count(
      `UPDATE a2a_push_configs SET notified_seq = $1, last_state = $2, done = done OR $3, updated_at = $4
        WHERE tenant = $5 AND task_id = $6 AND id = $7 AND notified_seq <= $1`,
      [Math.trunc(seq), lastState, done, nowIso(), tenant, taskId, id],
    )
  }

  async taskOfMessage(ctx: CallContext, messageId: string): Promise<string | undefined> {
    const row = await this.db.one<{ task_id: string }>(
      'SELECT task_id FROM a2a_messages WHERE tenant = $1 AND owner = $2 AND message_id = $3',
      [ctx.tenant, ownerOf(ctx), messageId],
    )
    return row?.task_id
  }

  async rememberMessage(ctx: CallContext, messageId: string, taskId: string): Promise<void> {
    await this.db.count(
      `INSERT INTO a2a_messages (tenant, owner, message_id, task_id, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant, owner, message_id) DO NOTHING`,
      [ctx.tenant, ownerOf(ctx), messageId, taskId, nowIso()],
    )
  }

  async listTaskIds(
    ctx: CallContext,
    q: TaskQuery,
  ): Promise<{ ids: string[]; next?: string; total: number }> {
    const args: unknown[] = [ctx.tenant, q.agent]
    const where = ['tenant = $1', 'agent = $2']
    if (!seesTenant(ctx)) {
      args.push(ownerOf(ctx))
      where.push(`owner = $${args.length}`)
    }
    if (q.threadId !== undefined) {
      args.push(q.threadId)
      where.push(`thread_id = $${args.length}`)
    }
    if (q.states) {
      if (!q.states.length) return { ids: [], total: 0 }
      where.push(`(${q.states.map((s) => stateSql(s, args)).join(' OR ')})`)
    }
    if (q.updatedAfter !== undefined) {
      const after = new Date(q.updatedAfter)
      if (Number.isNaN(after.getTime()))
        throw new GatewayError('bad_request', 'invalid updatedAfter timestamp')
      args.push(after.toISOString())
      where.push(`updated_at > $${args.length}`)
    }
    const total = (await this.db.one<{ n: number }>(
      `SELECT COUNT(*) AS n FROM runs WHERE ${where.join(' AND ')}`,
      args,
    ))!.n
    const pageWhere = [...where]
    const pageArgs = [...args]
    if (q.pageToken) {
      const [at, seq] = decodeCursor(q.pageToken)
      if (typeof at !== 'string' || typeof seq !== 'number' || Number.isNaN(new Date(at).getTime()))
        throw new GatewayError('bad_request', 'invalid page token')
      pageArgs.push(new Date(at).toISOString(), seq)
      pageWhere.push(`(updated_at, seq) < ($${pageArgs.length - 1}::timestamptz, $${pageArgs.length})`)
    }
    const size = Math.min(Math.max(Math.trunc(q.pageSize), 1), 100)
    pageArgs.push(size + 1)
    const rows = await this.db.rows<{ id: string; seq: number; updated_at: string }>(
      `SELECT id, seq, updated_at FROM runs WHERE ${pageWhere.join(' AND ')}
        ORDER BY updated_at DESC, seq DESC LIMIT $${pageArgs.length}`,
      pageArgs,
    )
    const page = rows.slice(0, size)
    const last = page[page.length - 1]
    return {
      ids: page.map((r) => r.id),
      ...(rows.length > size && last ? { next: encodeCursor([last.updated_at, last.seq]) } : {}),
      total,
    }
  }
}
