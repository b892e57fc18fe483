import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createContext, systemContext, type CallContext } from '../../src/context.js'
import { uuidV7, uuidV7Of } from '../../src/ids.js'
import { createLogger } from '../../src/log.js'
import { canonicalJson } from '../../src/pipeline/stages.js'
import { openSqliteStore } from '../../src/store/sqlite/index.js'
import type { ToolCallBatch } from '../../src/store/types.js'
import { CallLog, decodeCallRows } from '../../src/telemetry/call-log.js'

const tool = { exposed: 'crm__find', name: 'find', connection: { name: 'crm' } }
const TRACE = '0af7651916cd43dd8448eb211c80319c'
const SPAN = 'b7ad6b7169203331'
const PARENT = '00f067aa0ba902b7'
const HASH = 'cd'.repeat(32)

const ctxOf = (requestId: string, tenant = 'acme', id = 'user@example.com'): CallContext =>
  createContext({ tenant, principal: { kind: 'user', id }, requestId })

/** A finished call with no parent span, sampled, ok. */
const okCall = (log: CallLog, ctx: CallContext, t: typeof tool = tool, startMs = 1) =>
  log.record(ctx, t, TRACE, SPAN, undefined, true, startMs, 1, 'ok', undefined, undefined, HASH)

/** A call log whose batches are kept here, decoded as a store would. */
function capture(opts: { chunkBytes?: number; sync?: boolean; redact?: (s: string) => string } = {}) {
  const batches: ToolCallBatch[] = []
  const log = new CallLog({
    store: { append: async (b) => void batches.push(b) },
    logger: createLogger('silent'),
    flushMs: 60_000,
    ...opts,
  })
  const rows = () => batches.map((b) => decodeCallRows(b, uuidV7))
  return { log, batches, rows }
}

describe('call log', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('a call comes back as the audit row and span the pipeline used to write', async () => {
    const { log, rows } = capture()
    const before = Date.now()
    log.record(
      ctxOf('req-1'),
      tool,
      TRACE,
      SPAN,
      PARENT,
      true,
      1_700_000_000_123.25,
      12.3456,
      'ok',
      undefined,
      undefined,
      HASH,
    )
    await log.flush()
    const [{ audit, spans }] = rows() as [ReturnType<typeof decodeCallRows>]
    expect(audit).toHaveLength(1)
    const a = audit[0]!
    expect(a).toEqual({
      id: a.id,
      tenant: 'acme',
      at: a.at,
      principal: 'user@example.com',
      principalKind: 'user',
      action: 'tool.call',
      target: 'crm/find',
      outcome: 'ok',
      argsHash: HASH,
      latencyMs: 12.346,
      requestId: 'req-1',
      traceId: TRACE,
    })
    // The row's time is the wall clock when the call ended; its id (a UUIDv7) begins with that time.
    const at = Date.parse(a.at)
    expect(at).toBeGreaterThanOrEqual(before)
    expect(at).toBeLessThanOrEqual(Date.now())
    expect(a.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(parseInt(a.id.replace(/-/g, '').slice(0, 12), 16)).toBe(at)
    expect(spans).toEqual([
      {
        traceId: TRACE,
        spanId: SPAN,
        parentSpanId: PARENT,
        tenant: 'acme',
        name: 'tools/call crm__find',
        kind: '2',
        startMs: 1_700_000_000_123.25,
        // The duration is read from the audit row, whose latency is kept to the microsecond.
        durationMs: 12.346,
        status: 'ok',
        attributes: {
          'gatehouse.tenant': 'acme',
          'gatehouse.principal': 'user@example.com',
          'gatehouse.connector': 'crm',
          'mcp.tool.name': 'find',
          'mcp.method.name': 'tools/call',
        },
      },
    ])
  })

  it('failures keep their code and exception type; an unsampled call keeps its audit row only', async () => {
    const { log, rows } = capture()
    log.record(ctxOf('r1'), tool, TRACE, SPAN, undefined, true, 1, 1, 'error', 'tool_error', undefined, HASH)
    log.record(
      ctxOf('r2'),
      tool,
      TRACE,
      SPAN,
      undefined,
      true,
      2,
      1,
      'cancelled',
      'cancelled',
      'GatewayError',
      HASH,
    )
    log.record(
      ctxOf('r3'),
      tool,
      TRACE,
      SPAN,
      PARENT,
      false,
      3,
      1,
      'denied',
      'forbidden',
      'GatewayError',
      HASH,
    )
    await log.flush()
    const [{ audit, spans }] = rows() as [ReturnType<typeof decodeCallRows>]
    expect(audit.map((a) => [a.requestId, a.outcome, a.errorCode])).toEqual([
      ['r1', 'error', 'tool_error'],
      ['r2', 'cancelled', 'cancelled'],
      ['r3', 'denied', 'forbidden'],
    ])
    expect(spans.map((s) => [s.startMs, s.status, s.attributes['exception.type'], s.parentSpanId])).toEqual([
      [1, 'error', undefined, undefined],
      [2, 'error', 'GatewayError', undefined],
    ])
  })

  it('request ids: any UTF-8 kept, overly long ones cut at 1024 characters', async () => {
    const { log, rows } = capture()
    okCall(log, ctxOf('żółw-🐢'))
    okCall(log, ctxOf('x'.repeat(5000)))
    await log.flush()
    const [{ audit }] = rows() as [ReturnType<typeof decodeCallRows>]
    expect(audit[0]!.requestId).toBe('żółw-🐢')
    expect(audit[1]!.requestId).toBe('x'.repeat(1024))
  })

  it('redacts names and ids (request ids with the one-off redaction), never tenant or kind', async () => {
    const seen: string[] = []
    const redact = (s: string) => {
      seen.push(s)
      return s
        .replace(/user@example\.com/g, '[email]')
        .replace(/find/g, '[f]')
        .replace(/secret/g, '[s]')
    }
    const batches: ToolCallBatch[] = []
    const log = new CallLog({
      store: { append: async (b) => void batches.push(b) },
      logger: createLogger('silent'),
      flushMs: 60_000,
      redact,
      redactOnce: (s) => `once(${s})`,
    })
    // One key's requests share its principal (the authenticator caches it per key).
    const ctx = ctxOf('secret-id')
    for (let i = 0; i < 3; i++)
      log.record(ctx, tool, TRACE, SPAN, undefined, true, 1, 1, 'error', 'find_failed', 'find', HASH)
    await log.close()
    const { audit, spans } = decodeCallRows(batches[0]!, uuidV7)
    expect(audit[0]).toMatchObject({
      tenant: 'acme',
      principal: '[email]',
      principalKind: 'user',
      target: 'crm/[f]',
      errorCode: '[f]_failed',
      requestId: 'once(secret-id)',
    })
    expect(spans[0]).toMatchObject({
      name: 'tools/call crm__[f]',
      tenant: 'acme',
      attributes: {
        'gatehouse.tenant': 'acme',
        'gatehouse.principal': '[email]',
        'mcp.tool.name': '[f]',
        'exception.type': '[f]',
      },
    })
    // Names are redacted once per batch, not once per call.
    expect(seen.filter((s) => s === 'user@example.com')).toHaveLength(1)
    expect(seen.filter((s) => s === 'crm/find')).toHaveLength(1)
    expect(seen).not.toContain('acme')
    expect(seen).not.toContain('user')
  })

  it('a full chunk is written at once; calls stay in order across batches, each with its own string table', async () => {
    const { log, batches, rows } = capture({ chunkBytes: 1024 })
    for (let i = 0; i < 20; i++) {
      const other = { exposed: `t${i % 3}`, name: `n${i % 3}`, connection: { name: 'c' } }
      okCall(log, ctxOf(`r${i}`, i % 2 ? 'acme' : 'globex'), other, i)
    }
    await new Promise((r) => setImmediate(r))
    // Five calls fit in 1 KiB: the first three chunks were written without waiting for a flush.
    expect(batches.length).toBeGreaterThanOrEqual(3)
    await log.close()
    const all = rows().flatMap((r) => r.audit)
    expect(all.map((a) => a.requestId)).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`))
    expect(all.map((a) => a.target)).toEqual(Array.from({ length: 20 }, (_, i) => `c/n${i % 3}`))
    expect(all.map((a) => a.tenant)).toEqual(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? 'acme' : 'globex')),
    )
    expect(batches.reduce((n, b) => n + b.count, 0)).toBe(20)
    for (const b of batches) expect(new Set(b.strings).size).toBe(b.strings.length)
  })

  it('sync mode writes each call before the next; a failed write is logged and later ones still land', async () => {
    let fail = true
    const written: ToolCallBatch[] = []
    const logged: string[] = []
    const log = new CallLog({
      store: {
        append: async (b) => {
          if (fail) {
            fail = false
            throw new Error('disk full')
          }
          written.push(b)
        },
      },
      logger: { error: (_o: unknown, msg: string) => void logged.push(msg) } as never,
      sync: true,
    })
    okCall(log, ctxOf('a'))
    okCall(log, ctxOf('b'))
    await log.flush()
    expect(logged).toEqual(['tool call telemetry write failed; batch dropped'])
    expect(written.map((b) => decodeCallRows(b, uuidV7).audit[0]!.requestId)).toEqual(['b'])
    await log.close()
  })

  it('the SQLite writer thread decodes batches with the same code (file database)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-calllog-'))
    dirs.push(dir)
    const store = openSqliteStore({ path: join(dir, 'gatehouse.db') })
    await store.tenants.ensure(systemContext(), 'acme')
    const log = new CallLog({ store: store.calls, logger: createLogger('silent'), flushMs: 60_000 })
    for (let i = 0; i < 500; i++)
      log.record(ctxOf(`r${i}`), tool, TRACE, SPAN, PARENT, true, i, 1, 'ok', undefined, undefined, HASH)
    await log.close()
    const admin = createContext({
      tenant: 'acme',
      principal: { kind: 'service', id: 'k' },
      roles: ['auditor'],
    })
    const page = await store.audit.list(admin, { limit: 1000 })
    expect(page.items).toHaveLength(500)
    expect(page.items[0]).toMatchObject({ requestId: 'r499', target: 'crm/find', traceId: TRACE })
    expect(await store.spans.listTrace(admin, TRACE)).toHaveLength(500)
    await store.close()
  })

  it('uuidV7Of (the writer thread’s ids) formats as uuidV7 does', () => {
    const now = Date.now()
    const a = uuidV7(now)
    const b = uuidV7Of(now, '00000000-0000-4000-8000-000000000000')
    expect(b.slice(0, 15)).toBe(a.slice(0, 15))
    expect(b).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7000-8000-000000000000$/)
  })
})

describe('canonical JSON of arguments', () => {
  it('sorts keys at every depth, whatever order they came in; in-order input is hashed as it is', () => {
    const cases: [unknown, string][] = [
      [{ a: 1, b: [1, { d: 2, c: 3 }] }, '{"a":1,"b":[1,{"c":3,"d":2}]}'],
      [{ b: 1, a: 2 }, '{"a":2,"b":1}'],
      [{ '10': 1, '9': 2, x: null }, '{"10":1,"9":2,"x":null}'],
      [{ a: undefined, b: 'x' }, '{"b":"x"}'],
      [{ z: { y: { x: [] } }, a: '' }, '{"a":"","z":{"y":{"x":[]}}}'],
      [[{ b: 1, a: 1 }, 'é', 1.5, true], '[{"a":1,"b":1},"é",1.5,true]'],
      [{}, '{}'],
      ['s', '"s"'],
      [null, 'null'],
    ]
    for (const [v, json] of cases) expect(canonicalJson(v)).toBe(json)
    // Equal arguments in any key order hash equally.
    expect(canonicalJson(JSON.parse('{"q":{"b":2,"a":1},"p":0}'))).toBe(
      canonicalJson({ p: 0, q: { a: 1, b: 2 } }),
    )
  })
})
