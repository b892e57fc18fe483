import { describe, expect, it } from 'vitest'
import { Parking } from '../../src/mcp/parking.js'
import { Cancellation, type CancelSignal } from '../../src/upstream/cancel.js'

describe('Parking', () => {
  it('pauses on each pushed request, resumes with the answer, and returns the final result', async () => {
    const p = new Parking()
    const first = await p.start(
      'me',
      'tool',
      async (onRequest) => {
        const a = (await onRequest('elicitation/create', { message: 'one' })) as { n: number }
        const b = (await onRequest('sampling/createMessage', { messages: [] })) as { n: number }
        return { total: a.n + b.n }
      },
      undefined,
    )
    expect(first).toMatchObject({
      resultType: 'input_required',
      inputRequests: { r: { method: 'elicitation/create' } },
    })
    const second = await p.resume(first.requestState as string, 'me', 'tool', { r: { n: 1 } }, undefined)
    expect(second).toMatchObject({
      resultType: 'input_required',
      inputRequests: { r: { method: 'sampling/createMessage' } },
    })
    expect(await p.resume(second.requestState as string, 'me', 'tool', { r: { n: 2 } }, undefined)).toEqual({
      total: 3,
    })
    expect(p.size).toBe(0)
  })

  it('gives up a paused call the client never answers, cancelling the upstream call', async () => {
    const p = new Parking({ ttlMs: 30 })
    let signal: CancelSignal | undefined
    const first = await p.start(
      'me',
      'tool',
      async (onRequest, s) => {
        signal = s
        await onRequest('elicitation/create', {})
        return {}
      },
      undefined,
    )
    await new Promise((r) => setTimeout(r, 80))
    expect(signal?.aborted).toBe(true)
    expect(p.size).toBe(0)
    await expect(p.resume(first.requestState as string, 'me', 'tool', { r: {} }, undefined)).rejects.toThrow(
      /unknown or expired/,
    )
  })

  it('a failure of the call is thrown to the caller of the round that sees it', async () => {
    const p = new Parking()
    const first = await p.start(
      'me',
      'tool',
      async (onRequest) => {
        await onRequest('roots/list', undefined)
        throw new Error('upstream broke')
      },
      undefined,
    )
    await expect(
      p.resume(first.requestState as string, 'me', 'tool', { r: { roots: [] } }, undefined),
    ).rejects.toThrow('upstream broke')
  })

  it('answers a call that never asks anything with its own result or error, and keeps nothing', async () => {
    const p = new Parking()
    expect(await p.start('me', 'tool', async () => ({ plain: true }), undefined)).toEqual({ plain: true })
    await expect(
      p.start(
        'me',
        'tool',
        async () => {
          throw new Error('upstream broke early')
        },
        undefined,
      ),
    ).rejects.toThrow('upstream broke early')
    expect(p.size).toBe(0)
  })

  it('cancels the call when the round that started it is cancelled before any pause, and not after', async () => {
    const p = new Parking()
    const round = new Cancellation()
    let signal: CancelSignal | undefined
    const pending = p.start(
      'me',
      'tool',
      (_onRequest, s) =>
        new Promise((_resolve, reject) => {
          signal = s
          s.addEventListener('abort', () => reject(new Error('cancelled upstream')))
        }),
      round,
    )
    round.abort('client went away')
    await expect(pending).rejects.toThrow('cancelled upstream')
    expect(signal?.aborted).toBe(true)
    expect(signal?.reason).toBe('client went away')

    // Once paused, the first round is over: its request ending does not cancel the call.
    const first = new Cancellation()
    let paused: CancelSignal | undefined
    const out = await p.start(
      'me',
      'tool',
      async (onRequest, s) => {
        paused = s
        const a = (await onRequest('elicitation/create', {})) as { ok: boolean }
        return { answered: a.ok }
      },
      first,
    )
    expect(out).toMatchObject({ resultType: 'input_required' })
    first.abort()
    expect(paused?.aborted).toBe(false)
    expect(await p.resume(out.requestState as string, 'me', 'tool', { r: { ok: true } }, undefined)).toEqual({
      answered: true,
    })
  })

  it('queues requests the upstream makes concurrently, asking one per round and answering each its own', async () => {
    const p = new Parking()
    const first = await p.start(
      'me',
      'tool',
      async (onRequest) => {
        const a = onRequest('roots/list', undefined)
        const b = onRequest('elicitation/create', { message: 'name?' })
        return { content: [], x: [await a, await b] } as never
      },
      undefined,
    )
    expect(first).toEqual({
      resultType: 'input_required',
      inputRequests: { r: { method: 'roots/list' } },
      requestState: expect.any(String),
    })
    const second = await p.resume(first.requestState as string, 'me', 'tool', { r: { roots: [] } }, undefined)
    expect(second).toEqual({
      resultType: 'input_required',
      inputRequests: { r: { method: 'elicitation/create', params: { message: 'name?' } } },
      requestState: expect.any(String),
    })
    const answer = { action: 'accept', content: { name: 'x' } }
    expect(await p.resume(second.requestState as string, 'me', 'tool', { r: answer }, undefined)).toEqual({
      content: [],
      x: [{ roots: [] }, answer],
    })
    expect(p.size).toBe(0)
  })

  it('rejects every queued request when a paused call is given up', async () => {
    const settled: string[] = []
    const ask = (onRequest: (m: string, params: undefined) => Promise<unknown>, m: string) =>
      onRequest(m, undefined).then(
        () => settled.push(`${m} resolved`),
        (e: Error) => settled.push(`${m}: ${e.message}`),
      )
    const run = async (onRequest: (m: string, params: undefined) => Promise<unknown>) => {
      await Promise.all([ask(onRequest, 'roots/list'), ask(onRequest, 'sampling/createMessage')])
      return {}
    }
    const p = new Parking()
    expect(await p.start('me', 'tool', run, undefined)).toMatchObject({ resultType: 'input_required' })
    p.close()
    await new Promise((r) => setTimeout(r, 0))
    expect(settled).toEqual([
      'roots/list: gateway shutting down',
      'sampling/createMessage: gateway shutting down',
    ])

    // Expiry, with the second request still queued behind the one being asked.
    settled.length = 0
    const q = new Parking({ ttlMs: 20 })
    expect(await q.start('me', 'tool', run, undefined)).toMatchObject({ resultType: 'input_required' })
    await new Promise((r) => setTimeout(r, 60))
    expect(settled).toEqual([
      'roots/list: the client did not answer in time',
      'sampling/createMessage: the client did not answer in time',
    ])
    expect(q.size).toBe(0)
  })

  it('rejects the requests still queued when the call has ended by the time it is resumed', async () => {
    const p = new Parking()
    let late: Promise<unknown> | undefined
    const first = await p.start(
      'me',
      'tool',
      async (onRequest) => {
        void onRequest('roots/list', undefined).catch(() => {})
        late = onRequest('elicitation/create', {})
        late.catch(() => {})
        return { done: true }
      },
      undefined,
    )
    expect(first).toMatchObject({ inputRequests: { r: { method: 'roots/list' } } })
    expect(
      await p.resume(first.requestState as string, 'me', 'tool', { r: { roots: [] } }, undefined),
    ).toEqual({
      done: true,
    })
    await expect(late).rejects.toThrow('the call ended')
    expect(p.size).toBe(0)
  })
})
