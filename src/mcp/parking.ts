import { randomUUID } from 'node:crypto'
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server'
import { Cancellation, type CancelSignal } from '../upstream/cancel.js'
import type { JsonObject } from '../upstream/rpc.js'

const PREFIX = 'gh-park:'
const INPUT_KEY = 'r'

/** Whether a requestState is one the gateway minted (not an upstream's, which is relayed as-is). */
export const isParkState = (v: unknown): v is string => typeof v === 'string' && v.startsWith(PREFIX)

type Outcome = { ok: true; value: JsonObject } | { ok: false; error: unknown }

interface Push {
  method: string
  params: JsonObject | undefined
  resolve(v: unknown): void
  reject(e: Error): void
}

/** Runs the tool call; `onRequest` receives the upstream's server→client requests. */
export type ParkedRun = (
  onRequest: (method: string, params: JsonObject | undefined) => Promise<unknown>,
  signal: CancelSignal,
) => Promise<JsonObject>

/**
 * A 2025-era upstream call paused on a server→client request (elicitation, sampling, roots)
 * that a 2026-era client can only answer through an input_required round trip.
 */
class ParkedCall {
  private ownId: string | undefined
  /** Minted when the call first pauses (most calls never do). */
  get id(): string {
    return (this.ownId ??= PREFIX + randomUUID())
  }
  readonly cancel = new Cancellation()
  /** The request the current (or next) round asks the client. */
  private pending: Push | undefined
  /**
   * Requests the upstream made while `pending` was still unanswered, oldest first: each is asked
   * in a round of its own once the ones before it are answered. Allocated only when needed.
   */
  private queued: Push[] | undefined
  private outcome: Outcome | undefined
  private wake: (() => void) | undefined
  timer: NodeJS.Timeout | undefined

  constructor(
    readonly owner: string,
    readonly tool: string,
  ) {}

  /** Set until the call first pauses: the first push answers the round that started the call. */
  onFirstPush: ((push: Push) => void) | undefined

  push(method: string, params: JsonObject | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const push: Push = { method, params, resolve, reject }
      if (this.pending) {
        // Already asking the client something: this one waits its turn.
        ;(this.queued ??= []).push(push)
        return
      }
      this.pending = push
      const first = this.onFirstPush
      if (first) {
        this.onFirstPush = undefined
        first(push)
      } else this.wake?.()
    })
  }

  settle(o: Outcome): void {
    this.outcome = o
    this.wake?.()
  }

  answer(value: unknown): void {
    const p = this.pending
    this.pending = this.queued?.shift()
    if (!p) return
    if (value === undefined) p.reject(new Error('the client sent no answer for the relayed request'))
    else p.resolve(value)
  }

  /** Waits for the call to finish or to need the client; the round's signal cancels the call meanwhile. */
  async next(round: CancelSignal | undefined): Promise<{ push: Push } | { outcome: Outcome }> {
    const onAbort = () => this.cancel.abort(round?.reason)
    round?.addEventListener('abort', onAbort, { once: true })
    try {
      await new Promise<void>((r) => {
        this.wake = r
        if (this.pending || this.outcome) r()
      })
    } finally {
      this.wake = undefined
      round?.removeEventListener('abort', onAbort)
    }
    if (this.outcome) {
      this.rejectAll('the call ended')
      return { outcome: this.outcome }
    }
    return { push: this.pending! }
  }

  dispose(reason: string): void {
    clearTimeout(this.timer)
    this.rejectAll(reason)
    this.cancel.abort(reason)
  }

  /** Rejects the request being asked and every one queued behind it. */
  private rejectAll(reason: string): void {
    const p = this.pending
    const q = this.queued
    this.pending = undefined
    this.queued = undefined
    p?.reject(new Error(reason))
    if (q) for (const push of q) push.reject(new Error(reason))
  }
}

export interface ParkingOptions {
  /** How long a paused call waits for the client's answer. */
  ttlMs?: number
  /** Paused calls kept at once; beyond this the oldest is given up. */
  max?: number
}

/**
 * Turns an upstream's pushed requests into input_required rounds for 2026-era clients, keeping
 * the upstream call open between rounds. A round's requestState names the paused call; it is
 * unguessable and bound to the principal and tool that started it.
 */
export class Parking {
  private readonly calls = new Map<string, ParkedCall>()
  private readonly ttlMs: number
  private readonly max: number

  constructor({ ttlMs = 10 * 60_000, max = 10_000 }: ParkingOptions = {}) {
    this.ttlMs = ttlMs
    this.max = max
  }

  get size(): number {
    return this.calls.size
  }

  /**
   * Starts a call; returns its result, or an input_required result when the upstream asks
   * something. Most calls never ask: until one does, the call's own outcome answers the round
   * directly (one promise, no pause machinery), and the round's cancellation cancels the call.
   */
  start(owner: string, tool: string, run: ParkedRun, round: CancelSignal | undefined): Promise<JsonObject> {
    const call = new ParkedCall(owner, tool)
    return new Promise<JsonObject>((resolve, reject) => {
      const onAbort = round ? () => call.cancel.abort(round.reason) : undefined
      if (onAbort) round!.addEventListener('abort', onAbort, { once: true })
      let first = true
      const endFirst = () => {
        first = false
        call.onFirstPush = undefined
        if (onAbort) round!.removeEventListener('abort', onAbort)
      }
      call.onFirstPush = (push) => {
        endFirst()
        resolve(this.pause(call, push))
      }
      run((method, params) => call.push(method, params), call.cancel).then(
        (value) => {
          if (!first) return call.settle({ ok: true, value })
          endFirst()
          resolve(value)
        },
        (error: unknown) => {
          if (!first) return call.settle({ ok: false, error })
          endFirst()
          reject(error)
        },
      )
    })
  }

  /** Continues a paused call with the client's answer. */
  async resume(
    state: string,
    owner: string,
    tool: string,
    responses: Record<string, unknown> | undefined,
    round: CancelSignal | undefined,
  ): Promise<JsonObject> {
    const call = this.calls.get(state)
    if (!call || call.owner !== owner || call.tool !== tool) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'unknown or expired requestState')
    }
    this.calls.delete(state)
    clearTimeout(call.timer)
    call.answer(responses?.[INPUT_KEY])
    return this.step(call, round)
  }

  close(): void {
    for (const c of this.calls.values()) c.dispose('gateway shutting down')
    this.calls.clear()
  }

  private async step(call: ParkedCall, round: CancelSignal | undefined): Promise<JsonObject> {
    const next = await call.next(round)
    if ('outcome' in next) {
      if (next.outcome.ok) return next.outcome.value
      throw next.outcome.error
    }
    return this.pause(call, next.push)
  }

  /** Keeps the call until the client answers `push` (or the pause expires); the round's answer. */
  private pause(call: ParkedCall, push: Push): JsonObject {
    if (this.calls.size >= this.max) {
      const oldest = this.calls.values().next().value
      if (oldest) {
        this.calls.delete(oldest.id)
        oldest.dispose('too many paused calls')
      }
    }
    this.calls.set(call.id, call)
    call.timer = setTimeout(() => {
      this.calls.delete(call.id)
      call.dispose('the client did not answer in time')
    }, this.ttlMs)
    call.timer.unref()
    return {
      resultType: 'input_required',
      inputRequests: {
        [INPUT_KEY]: { method: push.method, ...(push.params ? { params: push.params } : {}) },
      },
      requestState: call.id,
    }
  }
}
