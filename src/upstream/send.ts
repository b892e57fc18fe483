import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { UpstreamUnavailableError } from './rpc.js'

/** An upstream's answer: the whole body as text, or a stream for a 2xx `text/event-stream`. */
export interface UpstreamReply {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  /** The body, for every answer that is not a 2xx event stream ('' when it is). */
  text: string
  /** The body as it arrives, for a 2xx `text/event-stream` answer; destroying it ends the request. */
  stream: Readable | undefined
}

/**
 * Stops one call's HTTP exchanges: the one in flight, or the next one the moment it starts (a
 * request still queued for a connection has nothing to abort yet).
 */
export class Aborter {
  reason: Error | undefined
  private current: Dispatcher.DispatchController | undefined
  private wake: (() => void) | undefined

  abort(reason: Error): void {
    if (this.reason) return
    this.reason = reason
    this.current?.abort(reason)
    this.wake?.()
  }

  /** Waits `ms` between two exchanges (a server's `retry:`), or until the abort. */
  sleep(ms: number): Promise<void> {
    if (this.reason) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wake = done
    })
  }

  attach(controller: Dispatcher.DispatchController): void {
    if (this.reason) controller.abort(this.reason)
    else this.current = controller
  }

  detach(controller: Dispatcher.DispatchController | undefined): void {
    if (this.current === controller) this.current = undefined
  }
}

export interface SendOptions {
  path: string
  method: 'GET' | 'POST' | 'DELETE'
  headers: Record<string, string>
  body?: string
}

/**
 * One HTTP exchange on undici's dispatcher API. `undici.request` wraps every response in a
 * stream (and every callback in an async resource) that a JSON answer, read whole at once, does
 * not need: here a JSON body is gathered straight from the parser's chunks, refused past `limit`
 * bytes, and only an SSE answer gets a stream (with backpressure). Errors (connection refused,
 * reset, aborted, too large) reject the promise, or destroy the stream once it was handed out.
 *
 * The caller bounds the exchange (the call's deadline, through `aborter`), so undici's own headers
 * and body timeouts are off: at their 300 s defaults they would cut short a call whose connector
 * allows it longer (`timeout_ms` goes up to an hour), or an answer stream quiet for five minutes.
 */
export function send(
  dispatcher: Dispatcher,
  opts: SendOptions,
  limit: number,
  aborter: Aborter,
): Promise<UpstreamReply> {
  return new Promise((resolve, reject) => {
    dispatcher.dispatch(
      // A literal of one shape: a spread of `opts` here made undici's Request constructor build
      // new hidden classes per call (measured: ~20 % more CPU per call at 64 connections).
      {
        path: opts.path,
        method: opts.method,
        headers: opts.headers,
        body: opts.body,
        headersTimeout: 0,
        bodyTimeout: 0,
      },
      new ReplyHandler(resolve, reject, limit, aborter),
    )
  })
}

class ReplyHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private statusCode = 0
  private headers: Record<string, string | string[] | undefined> = {}
  private chunks: Buffer[] = []
  private size = 0
  private stream: Readable | undefined
  private ended = false

  constructor(
    private readonly resolve: (reply: UpstreamReply) => void,
    private readonly reject: (err: Error) => void,
    private readonly limit: number,
    private readonly aborter: Aborter,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    this.aborter.attach(controller)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.statusCode = statusCode
    this.headers = headers
    const type = headers['content-type']
    if (statusCode < 300 && typeof type === 'string' && type.startsWith('text/event-stream')) {
      this.stream = new Readable({
        read: () => controller.resume(),
        destroy: (err, done) => {
          if (!this.ended) controller.abort(err ?? new UpstreamUnavailableError('response stream closed'))
          done(err)
        },
      })
      this.resolve({ statusCode, headers, text: '', stream: this.stream })
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.stream) {
      if (!this.stream.push(chunk)) controller.pause()
      return
    }
    this.size += chunk.length
    if (this.size > this.limit) {
      controller.abort(new UpstreamUnavailableError(`upstream response over ${this.limit} bytes`))
      return
    }
    this.chunks.push(chunk)
  }

  onResponseEnd(): void {
    this.ended = true
    this.aborter.detach(this.controller)
    if (this.stream) {
      this.stream.push(null)
      return
    }
    const { chunks } = this
    const text =
      chunks.length === 0
        ? ''
        : (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.size)).toString('utf8')
    this.resolve({ statusCode: this.statusCode, headers: this.headers, text, stream: undefined })
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ended = true
    this.aborter.detach(this.controller)
    if (this.stream) this.stream.destroy(err)
    else this.reject(err)
  }
}
