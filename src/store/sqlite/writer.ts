import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'

/** Runs one prepared INSERT for many parameter rows, in one transaction. */
export interface BatchWriter {
  run(sql: string, rows: unknown[][]): Promise<void>
  close(): Promise<void>
}

/** In the calling thread: for `:memory:` databases and tests. */
export function inlineWriter(db: Database.Database): BatchWriter {
  const statements = new Map<string, Database.Statement>()
  return {
    async run(sql, rows) {
      let st = statements.get(sql)
      if (!st) statements.set(sql, (st = db.prepare(sql)))
      const stmt = st
      db.transaction(() => {
        for (const r of rows) stmt.run(...r)
      })()
    },
    async close() {},
  }
}

/**
 * The worker's whole program. It is plain JavaScript evaluated in the worker, so it runs the same
 * from the TypeScript sources (tests) and from dist/ (production).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.path)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = NORMAL')
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs)
const statements = new Map()
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.close(); return }
  try {
    let st = statements.get(m.sql)
    if (!st) statements.set(m.sql, (st = db.prepare(m.sql)))
    db.transaction(() => { for (const r of m.rows) st.run(...r) })()
    parentPort.postMessage({ id: m.id })
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message) })
  }
})
`

/**
 * Batches written by a worker thread with its own connection (WAL allows one writer beside the
 * main thread's readers): commits and checkpoints never block the event loop that serves calls.
 */
export function workerWriter(path: string, busyTimeoutMs = 5000): BatchWriter {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, busyTimeoutMs } })
  worker.unref()
  const pending = new Map<number, { resolve(): void; reject(e: Error): void }>()
  let next = 0
  let failed: Error | undefined
  worker.on('message', (m: { id: number; error?: string }) => {
    const p = pending.get(m.id)
    pending.delete(m.id)
    // An idle writer must not keep the process alive; one with writes in flight must.
    if (pending.size === 0) worker.unref()
    if (m.error) p?.reject(new Error(`telemetry write failed: ${m.error}`))
    else p?.resolve()
  })
  const fail = (err: Error) => {
    failed = err
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }
  worker.on('error', fail)
  worker.on('exit', () => fail(new Error('telemetry writer stopped')))
  return {
    run(sql, rows) {
      if (failed) return Promise.reject(failed)
      const id = next++
      return new Promise<void>((resolve, reject) => {
        pending.set(id, { resolve, reject })
        worker.ref()
        worker.postMessage({ id, sql, rows })
      })
    },
    async close() {
      if (failed) return
      const exited = new Promise<void>((r) => worker.once('exit', () => r()))
      worker.ref()
      worker.postMessage({ close: true })
      await exited
    },
  }
}
