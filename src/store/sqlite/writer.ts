import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type Database from 'better-sqlite3'
import { uuidV7, uuidV7Of } from '../../ids.js'
import { decodeCalls } from '../../telemetry/call-log.js'
import type { ToolCallBatch } from '../types.js'
import { auditParams, CALL_INSERT, callParams } from './telemetry.js'

/** Writes telemetry in batches, each in one transaction. */
export interface BatchWriter {
  /** Runs one prepared INSERT for many parameter rows. */
  run(sql: string, rows: unknown[][]): Promise<void>
  /** Inserts the audit rows (with their spans) of a batch of tool calls (the batch's buffer may be taken). */
  calls(batch: ToolCallBatch): Promise<void>
  close(): Promise<void>
}

/** In the calling thread: for `:memory:` databases and tests. */
export function inlineWriter(db: Database.Database): BatchWriter {
  const statements = new Map<string, Database.Statement>()
  const prepared = (sql: string) => {
    let st = statements.get(sql)
    if (!st) statements.set(sql, (st = db.prepare(sql)))
    return st
  }
  return {
    async run(sql, rows) {
      const stmt = prepared(sql)
      db.transaction(() => {
        for (const r of rows) stmt.run(...r)
      })()
    },
    async calls(batch) {
      const insert = prepared(CALL_INSERT)
      db.transaction(() => decodeCalls(batch, uuidV7, (e, s) => insert.run(...callParams(e, s))))()
    },
    async close() {},
  }
}

/**
 * The worker's whole program. It is plain JavaScript evaluated in the worker, so it runs the same
 * from the TypeScript sources (tests) and from dist/ (production). The functions that turn a batch
 * of tool calls into rows are the main thread's own, by their source text (each is self-contained).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { randomUUID } = require('node:crypto')
const Database = require(workerData.driver)
const decodeCalls = ${decodeCalls.toString()}
const uuidV7Of = ${uuidV7Of.toString()}
const auditParams = ${auditParams.toString()}
const callParams = ${callParams.toString()}
const newId = (ms) => uuidV7Of(ms, randomUUID())
const db = new Database(workerData.path)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = NORMAL')
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs)
const statements = new Map()
const prepared = (sql) => {
  let st = statements.get(sql)
  if (!st) statements.set(sql, (st = db.prepare(sql)))
  return st
}
parentPort.on('message', (m) => {
  if (m.close) { db.close(); parentPort.close(); return }
  try {
    if (m.calls) {
      const insert = prepared(workerData.callSql)
      db.transaction(() => decodeCalls(m.calls, newId, (e, s) => insert.run(...callParams(e, s))))()
    } else {
      const st = prepared(m.sql)
      db.transaction(() => { for (const r of m.rows) st.run(...r) })()
    }
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
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { path, driver, busyTimeoutMs, callSql: CALL_INSERT },
  })
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
  const send = (message: object, transfer: ArrayBuffer[] = []) => {
    if (failed) return Promise.reject(failed)
    const id = next++
    return new Promise<void>((resolve, reject) => {
      pending.set(id, { resolve, reject })
      worker.ref()
      worker.postMessage({ id, ...message }, transfer)
    })
  }
  return {
    run: (sql, rows) => send({ sql, rows }),
    // The batch's bytes are moved to the worker, not copied.
    calls: (batch) => send({ calls: batch }, [batch.bytes]),
    async close() {
      if (failed) return
      const exited = new Promise<void>((r) => worker.once('exit', () => r()))
      worker.ref()
      worker.postMessage({ close: true })
      await exited
    },
  }
}
