import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { usePostgres } from '../helpers/postgres.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { agentManifests } from '../runs/manifests.js'

// Two gateway processes (replicas) on one PostgreSQL database, one per-second schedule.
const pgsql = usePostgres()
const dir = mkdtempSync(join(tmpdir(), 'gh-sched-cluster-'))
const procs: GatewayProcess[] = []

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()))
  rmSync(dir, { recursive: true, force: true })
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

describe('schedules across replicas (PostgreSQL)', () => {
  it('a schedule ticking every second for 10 s on two replicas starts exactly one run per tick', async () => {
    const manifests = join(dir, 'manifests.yaml')
    writeFileSync(
      manifests,
      `${agentManifests()}---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: tick }
spec: { cron: "* * * * * *", agent: flex, input: { mode: echo, text: tick }, overlap: enqueue }
`,
    )
    const env = { GATEHOUSE_DATABASE_URL: pgsql.url() }
    const args = ['--manifests', manifests]
    // Both replicas apply the same manifests at start (idempotent) and tick from then on.
    const [a, b] = await Promise.all([spawnGateway(args, env), spawnGateway(args, env)])
    procs.push(a!, b!)
    const bothUp = Date.now()
    await sleep(10_500)
    const stopAt = Date.now()
    expect(await Promise.all([a!.stop(), b!.stop()])).toEqual([0, 0])

    const ticks = await sql<{ tick_at: Date; status: string; run_id: string | null; owner: string }>(
      "SELECT tick_at, status, run_id, owner FROM schedule_ticks WHERE tenant = 'default' AND schedule = 'tick' ORDER BY tick_at",
    )
    const runs = await sql<{ id: string; status: string; created_at: Date }>(
      "SELECT id, status, created_at FROM runs WHERE tenant = 'default' AND thread_id = 'schedule:tick'",
    )
    // While both replicas were up: every second has its tick, each started exactly one run.
    const window = ticks.filter(
      (t) => t.tick_at.getTime() > bothUp + 500 && t.tick_at.getTime() < stopAt - 500,
    )
    expect(window.length).toBeGreaterThanOrEqual(8)
    for (let i = 1; i < window.length; i++)
      expect(window[i]!.tick_at.getTime() - window[i - 1]!.tick_at.getTime()).toBe(1000)
    expect(window.every((t) => t.status === 'started' && t.run_id)).toBe(true)
    // No tick twice (the key), no run twice, and every run on the schedule's thread belongs to one tick.
    const tickTimes = ticks.map((t) => t.tick_at.getTime())
    expect(new Set(tickTimes).size).toBe(tickTimes.length)
    const runIds = ticks.filter((t) => t.run_id).map((t) => t.run_id!)
    expect(new Set(runIds).size).toBe(runIds.length)
    expect(runs.map((r) => r.id).sort()).toEqual([...runIds].sort())
    expect(ticks.every((t) => t.status === 'started')).toBe(true)
    // Claimed by the replicas themselves (whichever was first each second).
    expect(new Set(ticks.map((t) => t.owner)).size).toBeGreaterThanOrEqual(1)
    // The cluster-wide system jobs use the same ledger: one row per interval at most.
    const jobs = await sql<{ schedule: string; n: string }>(
      "SELECT schedule, count(*) AS n FROM schedule_ticks WHERE tenant = '_system' GROUP BY schedule, tick_at HAVING count(*) > 1",
    )
    expect(jobs).toEqual([])
  }, 60_000)
})
