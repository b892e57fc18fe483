import pg from 'pg'

/** A pool or a client inside a transaction: what the store modules run their SQL on. */
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient

const INT8 = 20
const TIMESTAMPTZ = 1184
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ) as (v: string) => Date

/**
 * Result parsing for this store's pools only (the process-wide pg defaults stay untouched):
 * bigint columns (sequences, epoch milliseconds) as numbers — they stay far below 2^53 — and
 * timestamptz as the ISO-8601 UTC text the store interfaces promise.
 */
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8) return (v: string) => Number(v)
    if (oid === TIMESTAMPTZ) return (v: string) => parseTimestamptz(v).toISOString()
    return pg.types.getTypeParser(oid, format)
  }) as pg.CustomTypesConfig['getTypeParser'],
}

/** SQLSTATEs after which a whole transaction may simply run again. */
const RETRYABLE = new Set(['40001', '40P01'])
export const UNIQUE_VIOLATION = '23505'

export function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError ? err.code : undefined
}

/** The pool plus a transaction helper. */
export class Db {
  constructor(readonly pool: pg.Pool) {}

  async rows<R>(sql: string, params: unknown[] = [], on: Queryable = this.pool): Promise<R[]> {
    return (await on.query(sql, params)).rows as R[]
  }

  async one<R>(sql: string, params: unknown[] = [], on: Queryable = this.pool): Promise<R | undefined> {
    return (await on.query(sql, params)).rows[0] as R | undefined
  }

  async count(sql: string, params: unknown[] = [], on: Queryable = this.pool): Promise<number> {
    return (await on.query(sql, params)).rowCount ?? 0
  }

  /**
   * Runs `fn` in one READ COMMITTED transaction on one connection. Row locks (`FOR UPDATE`) are
   * taken in one order everywhere — a thread before its runs, runs by `seq` — so deadlocks should
   * not happen; if PostgreSQL still aborts one (deadlock or serialization failure), the whole
   * transaction runs again, which is safe because `fn` only talks to the database.
   */
  async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect()
      let broken = false
      try {
        await client.query('BEGIN')
        const out = await fn(client)
        await client.query('COMMIT')
        return out
      } catch (err) {
        try {
          await client.query('ROLLBACK')
        } catch {
          broken = true
        }
        const state = sqlState(err)
        if (state && RETRYABLE.has(state) && attempt < 5) continue
        throw err
      } finally {
        client.release(broken)
      }
    }
  }
}
