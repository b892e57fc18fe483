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
})
