import { spawn, type ChildProcess } from 'node:child_process'
import type { Logger } from '../log.js'
import { LineSplitter } from './lines.js'
import { Slots } from '../slots.js'
import {
  answerServerRequest,
  UpstreamRpcError,
  UpstreamTimeout,
  UpstreamUnavailableError,
  type CallHooks,
  type JsonObject,
  type RequestOptions,
  type RpcMessage,
  type RpcTransport,
} from './rpc.js'

export interface StdioTransportOptions {
  command: string
  args: string[]
  /** Merged over a minimal inherited environment (PATH, HOME, …), never the whole gateway env. */
  env: Record<string, string>
  cwd?: string
  logger: Logger
  /** Largest line accepted from the child before it is considered broken. */
  maxLineBytes?: number
}

interface Pending {
  /** The request's id, as a string (answers are matched on it whatever type the upstream echoes). */
  key: string
  /** The progress token the request carries, if any. */
  token: string | undefined
  resolve(v: JsonObject): void
  reject(e: Error): void
  hooks?: CallHooks
}

/** Variables a child needs to run at all; secrets of the gateway are not passed through. */
const INHERITED = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'TERM',
  'LANG',
  'LC_ALL',
  'TMPDIR',
  'TZ',
  'NODE_PATH',
  'SYSTEMROOT',
]

export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const k of INHERITED) if (process.env[k] !== undefined) env[k] = process.env[k]!
  return { ...env, ...extra }
}

/**
 * MCP over a child's stdin/stdout (newline-delimited JSON). Messages on one pipe carry no call
 * context, so server→client requests go to the single in-flight call that can relay them;
 * progress goes to the call owning the progress token.
 */
export class StdioTransport implements RpcTransport {
  onNotification?: (method: string, params: JsonObject | undefined) => void
  onClose?: (reason: Error) => void
  private readonly child: ChildProcess
  /** Requests in flight (not a Map: see Slots; the answer's lookup scans the few in flight). */
  private readonly pending = new Slots<Pending>()
  private nextId = 1
  private closed: Error | undefined
  private readonly logger: Logger

  constructor(opts: StdioTransportOptions) {
    this.logger = opts.logger
    this.child = spawn(opts.command, opts.args, {
      env: childEnv(opts.env),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const maxLine = opts.maxLineBytes ?? 16 * 1024 * 1024
    const lines = new LineSplitter(
      maxLine,
      (line) => {
        if (line.trim()) this.onLine(line)
      },
      () => {
        this.fail(new UpstreamUnavailableError(`upstream wrote a message over ${maxLine} bytes`))
        this.child.kill('SIGKILL')
      },
    )
    this.child.stdout!.on('data', (chunk: Buffer) => lines.push(chunk))
    // stderr is only logged: overlong lines are dropped rather than buffered.
    const errLines = new LineSplitter(
      64 * 1024,
      (line) => this.logger.debug({ stderr: line.slice(0, 2000) }, 'upstream stderr'),
      () => {},
    )
    this.child.stderr!.on('data', (chunk: Buffer) => errLines.push(chunk))
    this.child.on('error', (e) =>
      this.fail(new UpstreamUnavailableError(`cannot start ${opts.command}: ${e.message}`)),
    )
    this.child.on('exit', (code, signal) =>
      this.fail(new UpstreamUnavailableError(`upstream process exited (${signal ?? `code ${code}`})`)),
    )
    this.child.stdin!.on('error', () => {})
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  request(method: string, params: JsonObject | undefined, opts: RequestOptions): Promise<JsonObject> {
    if (this.closed) return Promise.reject(this.closed)
    const id = this.nextId++
    const key = String(id)
    const token = opts.hooks?.onProgress ? `gh-${id}` : undefined
    const outParams = token
      ? { ...params, _meta: { ...((params?._meta as JsonObject) ?? {}), progressToken: token } }
      : params
    return new Promise<JsonObject>((resolve, reject) => {
      const done = () => {
        this.pending.remove(slot)
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
      }
      let slot = -1
      const p: Pending = {
        key,
        token,
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        ...(opts.hooks ? { hooks: opts.hooks } : {}),
      }
      const cancelUpstream = (reason: string, err: Error) => {
        void this.notify('notifications/cancelled', { requestId: id, reason })
        p.reject(err)
      }
      const onAbort = () =>
        cancelUpstream(
          String(opts.signal?.reason ?? 'cancelled'),
          new UpstreamRpcError(-32800, 'request cancelled'),
        )
      const timer = setTimeout(
        () => cancelUpstream('timeout', new UpstreamTimeout(opts.timeoutMs)),
        opts.timeoutMs,
      )
      if (opts.signal?.aborted) return onAbort()
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      slot = this.pending.add(p)
      this.write({ jsonrpc: '2.0', id, method, ...(outParams ? { params: outParams } : {}) })
    })
  }

  async notify(method: string, params?: JsonObject): Promise<void> {
    if (!this.closed) this.write({ jsonrpc: '2.0', method, ...(params ? { params } : {}) })
  }

  async close(): Promise<void> {
    this.fail(new UpstreamUnavailableError('connection closed'))
    await terminate(this.child)
  }

  private write(msg: RpcMessage): void {
    this.child.stdin!.write(JSON.stringify(msg) + '\n')
  }

  private onLine(line: string): void {
    let msg: RpcMessage
    try {
      msg = JSON.parse(line) as RpcMessage
    } catch {
      this.logger.warn({ line: line.slice(0, 200) }, 'upstream wrote a non-JSON line to stdout')
      return
    }
    if (msg.method !== undefined && msg.id !== undefined && msg.id !== null) {
      void this.onServerRequest(msg)
    } else if (msg.method !== undefined) {
      this.onNotify(msg.method, msg.params)
    } else if (msg.id !== undefined && msg.id !== null) {
      const key = String(msg.id)
      const p = this.pending.find((q) => q.key === key)
      if (!p) return
      if (msg.error) p.reject(new UpstreamRpcError(msg.error.code, msg.error.message, msg.error.data))
      else p.resolve((msg.result ?? {}) as JsonObject)
    }
  }

  private onNotify(method: string, params: JsonObject | undefined): void {
    if (method === 'notifications/progress') {
      const token = String(params?.progressToken)
      const p = this.pending.find((q) => q.token === token)
      p?.hooks?.onProgress?.(params ?? {})
      return
    }
    const sole = this.soleRelay()
    if (sole?.onNotification && method === 'notifications/message') sole.onNotification(method, params)
    else this.onNotification?.(method, params)
  }

  private async onServerRequest(msg: RpcMessage): Promise<void> {
    const reply = await answerServerRequest(msg, this.soleRelay(), undefined)
    if (!this.closed) this.write(reply)
  }

  /** The only in-flight call able to relay, if there is exactly one. */
  private soleRelay(): CallHooks | undefined {
    let found: CallHooks | undefined
    for (const p of this.pending.values()) {
      if (!p.hooks?.onRequest) continue
      if (found) return undefined
      found = p.hooks
    }
    return found
  }

  private fail(reason: Error): void {
    if (this.closed) return
    this.closed = reason
    for (const p of [...this.pending.values()]) p.reject(reason)
    this.onClose?.(reason)
  }
}

/** SIGTERM, then SIGKILL after a grace period: no orphaned children. */
export async function terminate(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.stdin?.end()
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(t)
}
