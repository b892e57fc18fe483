import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { StreamResponse } from '@a2a-js/sdk'
import { ADMIN_KEY } from '../helpers/gateway.js'
import { spawnGateway, type GatewayProcess } from '../helpers/process.js'
import { agentManifests } from '../runs/manifests.js'
import { a2aClient, artifactData, collect, data, message, statesOf, TaskState } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'gh-a2a-restart-'))
const manifest = join(dir, 'agents.yaml')
writeFileSync(manifest, agentManifests())
const procs: GatewayProcess[] = []

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => p.stop('SIGKILL')))
  rmSync(dir, { recursive: true, force: true })
})

async function start(dataDir: string, port?: string): Promise<GatewayProcess> {
  const p = await spawnGateway(['--manifests', manifest, ...(port ? ['--port', port] : [])], {}, dataDir)
  procs.push(p)
  return p
}

const progressOf = (events: StreamResponse[]): number[] =>
  events.flatMap((e) =>
    e.payload?.$case === 'statusUpdate' &&
    e.payload.value.metadata?.['io.gatehouse/event'] === 'progress' &&
    e.payload.value.status?.message?.parts[0]?.content?.$case === 'data'
      ? [(e.payload.value.status.message.parts[0].content.value as { step: number }).step]
      : [],
  )

describe('an A2A task across a gateway crash', () => {
  it('survives SIGKILL mid-task: the same A2A client subscribes again and gets the result', async () => {
    const dataDir = mkdtempSync(join(dir, 'data-'))
    const log = join(dir, 'steps.log')
    writeFileSync(log, '')
    let gw = await start(dataDir)
    const port = new URL(gw.url).port
    const client = await a2aClient(gw.url, 'flex', ADMIN_KEY)

    // Stream a long task; kill the gateway once two steps are done.
    const before: StreamResponse[] = []
    const streamed = (async () => {
      try {
        for await (const e of client.sendMessageStream(
          message(data({ mode: 'steps', steps: 10, sleepMs: 200, log })),
        )) {
          before.push(e)
        }
      } catch {
        // The gateway died under the stream.
      }
    })()
    for (let i = 0; progressOf(before).length < 2; i++) {
      if (i > 200) throw new Error('no progress before the crash')
      await new Promise((r) => setTimeout(r, 25))
    }
    await gw.stop('SIGKILL')
    await streamed
    const taskId = before[0]?.payload?.$case === 'task' ? before[0].payload.value.id : ''
    expect(taskId).toBeTruthy()
    expect(statesOf(before)).not.toContain(TaskState.TASK_STATE_COMPLETED)

    // Same data, same address: the run is taken over; the client reconnects with SubscribeToTask.
    gw = await start(dataDir, port)
    let after: StreamResponse[] = []
    for (let tries = 0; ; tries++) {
      try {
        after = await collect(client.resubscribeTask({ tenant: '', id: taskId }))
        break
      } catch (err) {
        if (tries > 40) throw err
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    expect(after[0]?.payload?.$case).toBe('task')
    expect(statesOf(after).at(-1)).toBe(TaskState.TASK_STATE_COMPLETED)
    const task = await client.getTask({ tenant: '', id: taskId, historyLength: 0 })
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED)
    expect(artifactData(task)).toEqual([{ done: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90] }])
    // Completed steps ran once; only the step in flight at the kill may have run twice.
    const lines = readFileSync(log, 'utf8').trim().split('\n')
    const byStep = new Map<string, number>()
    for (const l of lines) byStep.set(l.split(':')[1]!, (byStep.get(l.split(':')[1]!) ?? 0) + 1)
    expect(byStep.size).toBe(10)
    expect([...byStep.values()].filter((n) => n > 1).length).toBeLessThanOrEqual(1)
    // The stream after the restart continued where the log was: no step announced twice.
    const steps = [...progressOf(before), ...progressOf(after)]
    expect(new Set(steps).size).toBe(steps.length)
  })
})
