import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
// @ts-expect-error — plain JS fixture
import { startUpstream } from '../fixtures/upstream-server.mjs'
import { ADMIN_KEY, httpConnector, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { usePostgres } from '../helpers/postgres.js'
import { readSse } from '../helpers/sse.js'
import { agentManifests } from './manifests.js'

// Two gateways (replicas) on one PostgreSQL database: what GATEHOUSE_DATABASE_URL is for.
const pgsql = usePostgres()
let a: TestGateway
let b: TestGateway
let upstream: { url: string; close(): Promise<void> }

beforeAll(async () => {
  if (!pgsql.ready()) return // every test fails with the start-up error instead
  upstream = await startUpstream({ era: '2025', name: 'up' })
  a = await startTestGateway({ config: { databaseUrl: pgsql.url(), runPollMs: 50 } })
  await a.apply(agentManifests() + '---\n' + httpConnector('up', upstream.url))
  // The second replica starts after the manifests are in the database and loads them from there.
  b = await startTestGateway({ config: { databaseUrl: pgsql.url(), runPollMs: 50 } })
})

afterAll(async () => {
  await a?.close()
  await b?.close()
  await upstream?.close()
})

async function sql<R>(text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: pgsql.url() })
  await c.connect()
  try {
    return (await c.query(text, params)).rows as R[]
  } finally {
    await c.end()
  }
}

async function waitRun(t: TestGateway, id: string) {
  const r = await t.api('GET', `/v1/runs/${id}/wait?timeout=20`)
  expect(r.status).toBe(200)
  return r.body as Record<string, any>
}

describe('gateway on PostgreSQL', () => {
  it('uses the PostgreSQL store and is ready', async () => {
    expect(a.gw.store.kind).toBe('postgres')
    expect(b.gw.store.kind).toBe('postgres')
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200)
    const versions = await sql<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')
    expect(versions.length).toBeGreaterThan(0)
    expect(new Set(versions.map((v) => v.version)).size).toBe(versions.length)
  })

  it('runs an agent end to end through the Run API; the other replica streams its events', async () => {
    const created = await a.api('POST', '/v1/runs', { agent: 'flex', input: { mode: 'steps', steps: 3 } })
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    const id = created.body.id as string
    const done = await waitRun(a, id)
    expect(done).toMatchObject({ id, status: 'succeeded', agent: 'flex', output: { done: [0, 10, 20] } })

    // Replica B reads the same run and replays its whole event log from the database.
    expect((await b.api('GET', `/v1/runs/${id}`)).body).toMatchObject({ id, status: 'succeeded' })
    const events = await readSse(`${b.url}/v1/runs/${id}/events`, { authorization: `Bearer ${ADMIN_KEY}` })
    expect(events.map((e) => e.event)).toEqual([
      'status',
      'status',
      'progress',
      'progress',
      'progress',
      'end',
    ])
    expect(events.map((e) => Number(e.id))).toEqual([1, 2, 3, 4, 5, 6])
    expect(events.at(-1)!.data).toMatchObject({ status: 'succeeded', output: { done: [0, 10, 20] } })
    const rest = await readSse(`${b.url}/v1/runs/${id}/events`, {
      authorization: `Bearer ${ADMIN_KEY}`,
      'last-event-id': '4',
    })
    expect(rest.map((e) => Number(e.id))).toEqual([5, 6])

    // The rows are in PostgreSQL: the run, its journal (three steps done) and its events.
    const [row] = await sql<{ status: string; attempts: number }>(
      'SELECT status, attempts FROM runs WHERE id = $1',
      [id],
    )
    expect(row).toEqual({ status: 'succeeded', attempts: 1 })
    const journal = await sql<{ name: string; status: string }>(
      'SELECT name, status FROM run_journal WHERE run_id = $1 ORDER BY pos',
      [id],
    )
    expect(journal).toEqual([
      { name: 'step-0', status: 'done' },
      { name: 'step-1', status: 'done' },
      { name: 'step-2', status: 'done' },
    ])
  })

  it('a run created on one replica is executed by either, calling an upstream tool through the pipeline', async () => {
    const created = await b.api('POST', '/v1/runs', {
      agent: 'flex',
      input: { mode: 'tool', tool: 'up__echo', args: { text: 'via postgres' } },
    })
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    const done = await waitRun(a, created.body.id)
    expect(done.status).toBe('succeeded')
    expect(textOf(done.output)).toBe('via postgres')
  })

  it('serves an MCP tool call to an upstream and audits it in PostgreSQL, readable from the other replica', async () => {
    const client = await a.client()
    const result = await client.callTool({ name: 'up__echo', arguments: { text: 'hello pg' } })
    expect(textOf(result)).toBe('hello pg')
    await expect
      .poll(
        async () =>
          (await b.api('GET', '/v1/audit?action=tool.call')).body.items.some(
            (e: any) => e.target === 'up/echo' && e.outcome === 'ok' && e.principalKind !== 'agent',
          ),
        { timeout: 10_000 },
      )
      .toBe(true)
    const rows = await sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'tool.call' AND target = 'up/echo'",
    )
    expect(rows[0]!.n).toBeGreaterThanOrEqual(2)
  })
})
