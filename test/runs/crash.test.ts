import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY } from '../helpers/gateway.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { readSse, type SseEvent } from '../helpers/sse.js'
import { agentManifests } from './manifests.js'

const dir = mkdtempSync(join(tmpdir(), 'gh-crash-'))
const manifest = join(dir, 'agents.yaml')
writeFileSync(manifest, agentManifests())
const auth = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }
const procs: GatewayProcess[] = []

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => p.stop('SIGKILL')))
  rmSync(dir, { recursive: true, force: true })
})

async function start(dataDir: string): Promise<GatewayProcess> {
  const p = await spawnGateway(['--manifests', manifest], {}, dataDir)
  procs.push(p)
  return p
}

async function api(url: string, method: string, path: string, body?: unknown) {
  const res = await fetch(url + path, {
    method,
    headers: auth,
    ...(body ? { body: JSON.stringify(body) } : {}),
  })
  return { status: res.status, body: (await res.json().catch(() => undefined)) as any }
}

/** Follows a run's events across gateway restarts, reconnecting with Last-Event-ID. */
async function follow(runId: string, currentUrl: () => string, events: SseEvent[]): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    const last = events.at(-1)?.id
    try {
      const got = await readSse(`${currentUrl()}/v1/runs/${runId}/events`, {
        authorization: `Bearer ${ADMIN_KEY}`,
        ...(last ? { 'last-event-id': last } : {}),
      })
      events.push(...got)
    } catch {
      // The gateway died mid-stream (or is not up yet): reconnect.
      await new Promise((r) => setTimeout(r, 50))
      continue
    }
    if (events.at(-1)?.event === 'end') return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('stream never ended')
}

describe('crash recovery (SIGKILL)', () => {
  it('every run completes, every completed step ran once, and a reconnecting stream has no gap or duplicate', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'))
    const log = join(dir, 'steps.log')
    writeFileSync(log, '')
    let gw = await start(dataDir)
    const runs: string[] = []
    for (let i = 0; i < 6; i++) {
      const r = await api(gw.url, 'POST', '/v1/runs', {
        agent: 'flex',
        input: { mode: 'steps', steps: 5, sleepMs: 120, log },
      })
      expect(r.status).toBe(201)
      runs.push(r.body.id)
    }
    const interrupted = (
      await api(gw.url, 'POST', '/v1/runs', { agent: 'flex', input: { mode: 'interrupt' } })
    ).body.id
    const events: SseEvent[] = []
    const following = follow(runs[0]!, () => gw.url, events)

    // Kill at several points: mid-step, then again soon after the restart.
    const kills = [250, 300, 200]
    for (const wait of kills) {
      await new Promise((r) => setTimeout(r, wait))
      await gw.stop('SIGKILL')
      gw = await start(dataDir)
    }
    await following

    for (const id of runs) {
      const r = await api(gw.url, 'GET', `/v1/runs/${id}/wait?timeout=30`)
      expect(r.body).toMatchObject({ status: 'succeeded', output: { done: [0, 10, 20, 30, 40] } })
    }
    // Each (run, step): consecutive attempts with no repeats. A repeat would mean a step the
    // journal recorded as done ran again; more than one only for a step in flight at a kill. The
    // first logged attempt may be 2: a kill that lands after the journal recorded the start of
    // attempt 1 and before the step's code wrote its line.
    const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean)
    const byStep = new Map<string, number[]>()
    for (const l of lines) {
      const [run, step, attempt] = l.split(':')
      const k = `${run}:${step}`
      byStep.set(k, [...(byStep.get(k) ?? []), Number(attempt)])
    }
    expect(byStep.size).toBe(runs.length * 5)
    let reruns = 0
    for (const attempts of byStep.values()) {
      expect(attempts).toEqual(attempts.map((_, i) => attempts[0]! + i))
      expect(attempts[0]).toBeLessThanOrEqual(kills.length + 1)
      reruns += attempts.length - 1
    }
    expect(reruns).toBeLessThanOrEqual(kills.length * runs.length)

    // The stream across three deaths: ids 1..n without a gap or a duplicate, one progress event per step.
    const ids = events.map((e) => Number(e.id))
    expect(ids).toEqual(ids.map((_, i) => i + 1))
    expect(
      events.filter((e) => e.event === 'progress').map((e) => (e.data as { step: number }).step),
    ).toEqual([0, 1, 2, 3, 4])
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { status: 'succeeded' } })

    // An interrupt survives the kills and is answered on the new process.
    const paused = await api(gw.url, 'GET', `/v1/runs/${interrupted}/wait?timeout=10`)
    expect(paused.body.status).toBe('interrupted')
    expect((await api(gw.url, 'POST', `/v1/runs/${interrupted}/resume`, { value: 'yes' })).status).toBe(202)
    const done = await api(gw.url, 'GET', `/v1/runs/${interrupted}/wait?timeout=10`)
    expect(done.body).toMatchObject({ status: 'succeeded', output: { answer: 'yes', after: 'got "yes"' } })
    expect(await gw.stop('SIGTERM')).toBe(0)
  }, 90_000)

  it('SIGTERM drains: the step in flight finishes, the process exits 0, and the next process finishes the run', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'))
    const log = join(dir, 'drain.log')
    writeFileSync(log, '')
    const a = await start(dataDir)
    const { id } = (
      await api(a.url, 'POST', '/v1/runs', {
        agent: 'flex',
        input: { mode: 'steps', steps: 4, sleepMs: 300, log },
      })
    ).body
    await expect.poll(() => readFileSync(log, 'utf8').length, { timeout: 5000 }).toBeGreaterThan(0)
    expect(await a.stop('SIGTERM')).toBe(0)
    const b = await start(dataDir)
    const r = await api(b.url, 'GET', `/v1/runs/${id}/wait?timeout=30`)
    expect(r.body.status).toBe('succeeded')
    // Drain let the step in flight finish and record it: no step ran twice.
    const attempts = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[2])
    expect(attempts).toEqual(['1', '1', '1', '1'])
  }, 60_000)
})
