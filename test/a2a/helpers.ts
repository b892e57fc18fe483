import { SendMessageRequest, TaskState, type StreamResponse, type Task } from '@a2a-js/sdk'
import {
  ClientFactory,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  RestTransportFactory,
  type Client,
} from '@a2a-js/sdk/client'

import { eventually } from '../helpers/gateway.js'

const COMPAT = { enabled: true }

/** `eventually` for a value: polls until `fn` gives one (not undefined, false, 0 or ''), and returns it. */
export async function eventuallyOk<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs?: number,
): Promise<NonNullable<T>> {
  return (await eventually(fn, timeoutMs)) as NonNullable<T>
}

/** fetch with `Authorization: Bearer <key>` on every request, as another framework would configure it. */
export function authFetch(key: string, rewrite?: (url: string) => string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined))
    headers.set('authorization', `Bearer ${key}`)
    const url = input instanceof Request ? input.url : String(input)
    return fetch(rewrite ? rewrite(url) : url, { ...init, headers })
  }
}

export type Binding = 'JSONRPC' | 'HTTP+JSON'

/**
 * An @a2a-js/sdk client for a gateway agent, from its card (`{base}/a2a/{agent}/.well-known/agent-card.json`):
 * JSON-RPC or HTTP+JSON (only that transport is offered), A2A 1.0 unless `legacy` (a 0.3-only
 * client: the card fetched without A2A-Version, its embedded 1.0 interfaces dropped).
 */
export async function a2aClient(
  base: string,
  agent: string,
  key: string,
  opts: { binding?: Binding; legacy?: boolean; rewrite?: (url: string) => string } = {},
): Promise<Client> {
  const fetchImpl = authFetch(key, opts.rewrite)
  const transports =
    (opts.binding ?? 'JSONRPC') === 'JSONRPC'
      ? [new JsonRpcTransportFactory({ fetchImpl, legacyCompat: COMPAT })]
      : [new RestTransportFactory({ fetchImpl, legacyCompat: COMPAT })]
  const factory = new ClientFactory({
    transports,
    cardResolver: new DefaultAgentCardResolver({ fetchImpl, legacyCompat: COMPAT }),
  })
  const cardUrl = `${base}/a2a/${agent}/.well-known/agent-card.json`
  if (!opts.legacy) return factory.createFromUrl(cardUrl, '')
  const res = await fetchImpl(cardUrl)
  if (!res.ok) throw new Error(`card: HTTP ${res.status}`)
  const card = (await res.json()) as Record<string, unknown>
  delete card.supportedInterfaces
  return factory.createFromAgentCard(card as never)
}

/** A SendMessageRequest from A2A 1.0 JSON pieces. */
export function message(
  parts: Record<string, unknown>[],
  extra: { taskId?: string; contextId?: string; messageId?: string } = {},
  configuration?: Record<string, unknown>,
): SendMessageRequest {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: extra.messageId ?? crypto.randomUUID(),
      role: 'ROLE_USER',
      parts,
      ...(extra.taskId ? { taskId: extra.taskId } : {}),
      ...(extra.contextId ? { contextId: extra.contextId } : {}),
    },
    ...(configuration ? { configuration } : {}),
  })
}

export const data = (value: unknown) => [{ data: value }]
export const text = (value: string) => [{ text: value }]

export function asTask(result: unknown): Task {
  if (!result || typeof result !== 'object' || !('status' in result)) throw new Error('not a task')
  return result as Task
}

export const stateOf = (t: Task): TaskState | undefined => t.status?.state

/** Reads a stream to its end (or until `stopAfter` returns true for an event). */
export async function collect(
  stream: AsyncGenerator<StreamResponse>,
  stopAfter?: (e: StreamResponse) => boolean,
): Promise<StreamResponse[]> {
  const out: StreamResponse[] = []
  for await (const e of stream) {
    out.push(e)
    if (stopAfter?.(e)) break
  }
  return out
}

/** The states of the status updates (and the first task) of a stream, in order. */
export function statesOf(events: StreamResponse[]): TaskState[] {
  return events.flatMap((e) =>
    e.payload?.$case === 'task'
      ? [e.payload.value.status!.state]
      : e.payload?.$case === 'statusUpdate'
        ? [e.payload.value.status!.state]
        : [],
  )
}

/** Texts of all parts of all artifacts of a task. */
export function artifactData(t: Task): unknown[] {
  return t.artifacts.flatMap((a) =>
    a.parts.map((p) => (p.content?.$case === 'data' ? p.content.value : p.content?.value)),
  )
}

export { TaskState }
