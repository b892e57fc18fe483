import { describe, expect, it } from 'vitest'
import { securityOf } from '../../src/a2a/card.js'
import { answerOf, artifactOf, inputOf, stateOfRun, TaskFold, valueParts } from '../../src/a2a/convert.js'
import type { RunEvent, RunRecord } from '../../src/store/runs.js'

const run = (over: Partial<RunRecord> = {}): RunRecord => ({
  id: '11111111-1111-4111-8111-111111111111',
  tenant: 'default',
  owner: 'service:k',
  agent: 'flex',
  threadId: 'ctx',
  status: 'running',
  input: { text: 'hi' },
  multitaskStrategy: 'enqueue',
  attempts: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:01.000Z',
  ...over,
})

let seq = 0
const ev = (type: string, data: unknown): RunEvent => ({ seq: ++seq, type, data, at: `t${seq}` })
const states = (fold: TaskFold, events: RunEvent[]) =>
  events
    .flatMap((e) => fold.apply(e))
    .flatMap((d) => ('statusUpdate' in d.event ? [d.event.statusUpdate.status.state] : []))

describe('task state from the run (convert.ts)', () => {
  it('follows the run: submitted, working, input-required, working after the answer, completed with the output', () => {
    const fold = new TaskFold(run())
    const got = states(fold, [
      ev('status', { status: 'queued' }),
      ev('status', { status: 'running' }),
      ev('interrupt', { status: 'interrupted', payload: { question: 'Go?', env: 'prod' } }),
      ev('status', { status: 'queued', resumed: true }),
      ev('status', { status: 'running' }),
      ev('end', { status: 'succeeded', output: { ok: true } }),
    ])
    expect(got).toEqual([
      'TASK_STATE_WORKING',
      'TASK_STATE_INPUT_REQUIRED',
      'TASK_STATE_WORKING',
      'TASK_STATE_COMPLETED',
    ])
    const task = fold.task({ answers: ['yes'] })
    expect(task.artifacts).toEqual([
      { artifactId: 'output', name: 'output', parts: [{ data: { ok: true } }] },
    ])
    expect(task.history!.map((m) => [m.role, m.parts])).toEqual([
      ['ROLE_USER', [{ text: 'hi' }]],
      ['ROLE_AGENT', [{ text: 'Go?' }, { data: { question: 'Go?', env: 'prod' } }]],
      ['ROLE_USER', [{ text: 'yes' }]],
    ])
    expect(fold.task({ historyLength: 1, answers: ['yes'] }).history).toHaveLength(1)
    expect(fold.task({ historyLength: 0 }).history).toBeUndefined()
    expect(fold.task({ includeArtifacts: false }).artifacts).toBeUndefined()
  })

  it('a policy denial is rejected; a missing account connection is auth-required; other failures failed', () => {
    const end = (error: { code: string; message: string }) => {
      const fold = new TaskFold(run())
      fold.apply(ev('end', { status: 'failed', error }))
      return fold.task().status
    }
    expect(end({ code: 'forbidden', message: 'policy denies github__delete_repo' })).toMatchObject({
      state: 'TASK_STATE_REJECTED',
      message: {
        parts: [{ text: 'policy denies github__delete_repo' }, { data: { error: { code: 'forbidden' } } }],
      },
    })
    expect(end({ code: 'connection_required', message: 'connect at /oauth/connect/gh' }).state).toBe(
      'TASK_STATE_AUTH_REQUIRED',
    )
    expect(end({ code: 'agent_error', message: 'boom' }).state).toBe('TASK_STATE_FAILED')
    const cancelled = new TaskFold(run())
    cancelled.apply(ev('end', { status: 'cancelled', error: { code: 'cancelled', message: 'stop' } }))
    expect(cancelled.state).toBe('canceled')

    const waiting = new TaskFold(run())
    waiting.apply(
      ev('interrupt', { payload: { type: 'connection_required', connect_url: '/oauth/connect/gh' } }),
    )
    expect(waiting.state).toBe('auth-required')
    expect(stateOfRun(run({ status: 'interrupted', interrupt: { type: 'auth_required' } }))).toBe(
      'auth-required',
    )
    expect(stateOfRun(run({ status: 'interrupted', interrupt: { question: 'x' } }))).toBe('input-required')
    expect(stateOfRun(run({ status: 'failed', error: { code: 'forbidden', message: '' } }))).toBe('rejected')
  })

  it('emitted artifacts (1.0, 0.3 and shorthand parts; chunks appended) and transient token updates', () => {
    const fold = new TaskFold(run())
    const out = [
      ev('artifact', { artifact: { artifactId: 'a', name: 'report', parts: [{ text: 'Hello, ' }] } }),
      ev('artifact', {
        artifact: { artifactId: 'a', parts: [{ kind: 'text', text: 'world' }] },
        append: true,
      }),
      ev('artifact', { file: { uri: 'https://example.com/x.png', mimeType: 'image/png', name: 'x.png' } }),
      ev('artifact', { data: { n: 1 }, name: 'numbers' }),
      ev('artifact', { nothing: true }),
      ev('token', { type: 'token', text: 'tok' }),
    ].flatMap((e) => fold.apply(e))
    expect(out.map((d) => d.transient)).toEqual([false, false, false, false, true, true])
    const artifacts = fold.task().artifacts!
    expect(artifacts[0]).toEqual({
      artifactId: 'a',
      name: 'report',
      parts: [{ text: 'Hello, ' }, { text: 'world' }],
    })
    expect(artifacts[1]!.parts).toEqual([
      { url: 'https://example.com/x.png', mediaType: 'image/png', filename: 'x.png' },
    ])
    expect(artifacts[2]).toMatchObject({ name: 'numbers', parts: [{ data: { n: 1 } }] })
    const token = out[5]!.event as { statusUpdate: { status: { message: { parts: unknown[] } } } }
    expect(token.statusUpdate.status.message.parts).toEqual([{ text: 'tok' }])
    expect(
      artifactOf({ parts: [{ raw: 'AAEC', mediaType: 'application/octet-stream' }] }, 9)?.artifact,
    ).toEqual({
      artifactId: 'artifact-9',
      parts: [{ raw: 'AAEC', mediaType: 'application/octet-stream' }],
    })
  })

  it('message parts to run input, and to an interrupt answer (SPEC: text → { text }, data → the object)', () => {
    expect(inputOf([{ text: 'hi' }])).toEqual({ text: 'hi' })
    expect(inputOf([{ data: { a: 1 } }])).toEqual({ a: 1 })
    expect(inputOf([{ text: 'see' }, { data: { mode: 'x', text: 'data wins' } }])).toEqual({
      mode: 'x',
      text: 'data wins',
    })
    expect(inputOf([{ data: [1, 2] }])).toEqual({ data: [1, 2] })
    expect(
      inputOf([{ text: 'a' }, { url: 'https://e.com/f', mediaType: 'text/csv', filename: 'f.csv' }]),
    ).toEqual({
      text: 'a',
      files: [{ url: 'https://e.com/f', mediaType: 'text/csv', name: 'f.csv' }],
    })
    expect(answerOf([{ text: 'yes' }])).toBe('yes')
    expect(answerOf([{ data: true }])).toBe(true)
    expect(answerOf([{ text: 'x' }, { data: { y: 1 } }])).toEqual({ text: 'x', y: 1 })
    expect(valueParts({ text: 'only' })).toEqual([{ text: 'only' }])
    expect(valueParts({ text: 'x', more: 1 })).toEqual([{ data: { text: 'x', more: 1 } }])
    expect(valueParts(null)).toEqual([])
  })
})

describe('card security (card.ts)', () => {
  it('is an HTTP bearer scheme, plus one OpenID Connect scheme per advertised issuer, any of them enough', () => {
    expect(securityOf()).toEqual({
      securitySchemes: {
        gatehouse: {
          httpAuthSecurityScheme: expect.objectContaining({ scheme: 'Bearer', bearerFormat: 'API key' }),
        },
      },
      securityRequirements: [{ schemes: { gatehouse: { list: [] } } }],
    })
    const withOidc = securityOf({ oidcIssuers: ['https://idp.example.com/', 'https://other.example.com'] })
    expect(withOidc.securitySchemes.oidc).toEqual({
      openIdConnectSecurityScheme: expect.objectContaining({
        openIdConnectUrl: 'https://idp.example.com/.well-known/openid-configuration',
      }),
    })
    expect(Object.keys(withOidc.securitySchemes)).toEqual(['gatehouse', 'oidc', 'oidc2'])
    expect(withOidc.securityRequirements).toHaveLength(3)
  })
})
