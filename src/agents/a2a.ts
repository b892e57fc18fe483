/**
 * The `a2a` agent type: a remote A2A agent called through the gateway, built only on AgentContext
 * so it runs (and replays) through the same durable engine as code agents. Speaks A2A 1.0 over
 * JSON-RPC or HTTP+JSON (whichever the card lists first), and v0.3 to peers whose card says so,
 * through @a2a-js/sdk's client.
 *
 * Journal layout of one run, in order:
 *   step 'a2a:send'         sends the input (messageId = the step's idempotency key) and returns
 *                           as soon as the remote task's id is known: the only side effect that
 *                           must never repeat, so nothing else happens in this step
 *   step 'a2a:wait'         follows that task (its stream, or tasks/get with backoff) until it is
 *                           terminal or needs input; emits status/artifact events on the way
 *   interrupt               when the remote asked for input: the question goes to the run's caller
 *   step 'a2a:reply:N'      sends the answer of round N on the same task (and context)
 *   step 'a2a:wait:N'       follows the task again
 * A crash inside 'a2a:send' re-sends with the same messageId (the window between the request and
 * the journal write; receivers can deduplicate on it). A crash inside 'a2a:wait' re-follows the
 * same task id. A replay over a complete journal makes no requests at all: the card is only
 * fetched inside a step.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import {
  Artifact,
  Part,
  SendMessageRequest,
  TaskState,
  type AgentCard,
  type StreamResponse,
  type Task,
  type TaskStatus,
} from '@a2a-js/sdk'
import {
  ClientFactory,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  RestTransportFactory,
  type Client,
} from '@a2a-js/sdk/client'
import { GatewayError } from '../errors.js'
import type { A2aAgentSpec } from '../manifests/schema.js'
import { defineAgent, type AgentContext, type AgentDefinition, type StepInfo } from './define.js'
import { safeUrl } from '../net/url.js'

/** A part in A2A 1.0 JSON: `{text}`, `{data}`, `{url, mediaType?, filename?}` or `{raw}` (+ metadata). */
export type A2aPart = Record<string, unknown>

/** An artifact in A2A 1.0 JSON. */
export interface A2aArtifact {
  artifactId: string
  name?: string
  description?: string
  parts: A2aPart[]
  [key: string]: unknown
}

export type A2aTaskState =
  | 'submitted'
  | 'working'
  | 'input-required'
  | 'auth-required'
  | 'completed'
  | 'failed'
  | 'canceled'
  | 'rejected'
  | 'unknown'

/** What the journal keeps of a remote task: plain JSON. */
export interface A2aTaskSnapshot {
  /** '' when the remote answered with a bare message instead of a task. */
  taskId: string
  contextId: string
  state: A2aTaskState
  /** Text of the status message: the question of input-required, the reason of failed. */
  text?: string
  /** Parts of the status message (or of the bare reply message). */
  message?: A2aPart[]
  /** Identifies the status (its timestamp and message id), to tell a new question from an answered one. */
  statusId?: string
  artifacts: A2aArtifact[]
}

/** What a send step ('a2a:send', 'a2a:reply:N') journals. */
interface Sent {
  snapshot: A2aTaskSnapshot
  /** When the message went out; `timeout_ms` counts from here, across crashes. */
  sentAt: number
  /**
   * The statusId of the question a reply answers. Right after a reply the remote may still
   * report that input-required status (nothing has processed the answer yet); only a newer
   * input-required status is a new question.
   */
  answering?: string
}

/** A stream opened by a send step, handed to the wait step of the same execution (never journaled). */
interface LiveStream {
  events: AsyncIterator<StreamResponse>
  abort: AbortController
}

interface Remote {
  client: Client
  streaming: boolean
}

/**
 * What a step of this agent type may be given besides StepInfo: headers for every request the
 * step makes. The gateway's A2A tracing (src/a2a/trace.ts) passes the W3C trace context of the
 * step's span here; this module knows nothing of tracing.
 */
export interface A2aStepInfo extends StepInfo {
  readonly headers?: Readonly<Record<string, string>>
}

type StepHeaders = A2aStepInfo['headers']

/** Per-request options of the SDK client: the step's headers go as service parameters (HTTP headers). */
function requestOptions(signal: AbortSignal, headers: StepHeaders) {
  return headers ? { signal, serviceParameters: { ...headers } } : { signal }
}

const REQUEST_TIMEOUT_MS = 30_000
const CANCEL_TIMEOUT_MS = 5_000
const CARD_TTL_MS = 60_000
const POLL_FIRST_MS = 250
const POLL_MAX_MS = 5_000
/** Consecutive failed attempts to reach the remote while following a task before giving up. */
const MAX_FOLLOW_FAILURES = 5
const CARD_PATH = '/.well-known/agent-card.json'
/**
 * Event types of the remote task's progress, streamed to the run's clients. Not `status`: the
 * run engine reserves that type for the run's own status (and refuses it from agents).
 */
export const STATUS_EVENT = 'task_status'
export const ARTIFACT_EVENT = 'artifact'
const COMPAT = { enabled: true }

const STATES: Partial<Record<TaskState, A2aTaskState>> = {
  [TaskState.TASK_STATE_SUBMITTED]: 'submitted',
  [TaskState.TASK_STATE_WORKING]: 'working',
  [TaskState.TASK_STATE_INPUT_REQUIRED]: 'input-required',
  [TaskState.TASK_STATE_AUTH_REQUIRED]: 'auth-required',
  [TaskState.TASK_STATE_COMPLETED]: 'completed',
  [TaskState.TASK_STATE_FAILED]: 'failed',
  [TaskState.TASK_STATE_CANCELED]: 'canceled',
  [TaskState.TASK_STATE_REJECTED]: 'rejected',
}
const FINAL = new Set<A2aTaskState>(['completed', 'failed', 'canceled', 'rejected'])
/** States at which following a task stops: terminal, or waiting for the client. */
const SETTLED = new Set<A2aTaskState>([...FINAL, 'input-required', 'auth-required'])

class NetworkError extends Error {}
class DeadlineExceeded extends Error {}

/**
 * Builds the AgentDefinition of an `a2a` agent. `headers` are the resolved secret headers of
 * `spec.headers`; they go with every request to the remote (card included) and never into an
 * error message.
 */
export function a2aAgent(
  name: string,
  spec: A2aAgentSpec,
  headers: Record<string, string>,
): AgentDefinition<unknown, unknown> {
  const label = `a2a agent '${name}'`
  const where = safeUrl(spec.url)
  const cardUrl = cardUrlOf(spec.url)
  const secrets = Object.values(headers).filter((v) => v.length >= 3)
  const scrub = (s: string): string => {
    const text = s.length > 500 ? `${s.slice(0, 500)}…` : s
    return secrets.reduce((t, v) => t.split(v).join('[redacted]'), text)
  }
  const fetchImpl = withHeaders(headers)
  let cachedCard: { raw: Record<string, unknown>; at: number } | undefined
  // Whichever of JSON-RPC and HTTP+JSON the card lists first; v0.3 interfaces get the compat transports.
  const factory = new ClientFactory({
    transports: [
      new JsonRpcTransportFactory({ fetchImpl, legacyCompat: COMPAT }),
      new RestTransportFactory({ fetchImpl, legacyCompat: COMPAT }),
    ],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl, legacyCompat: COMPAT }),
  })

  const failure = (what: string, err: unknown): GatewayError => {
    const msg = scrub(err instanceof Error ? err.message : String(err))
    const code =
      err instanceof Error && err.name === 'TimeoutError'
        ? 'timeout'
        : err instanceof NetworkError
          ? 'upstream_unavailable'
          : 'upstream_error'
    return new GatewayError(code, `${label} (${where}): ${what} failed: ${msg}`)
  }

  /** Card discovery and client: per execution, never journaled (no side effects). */
  const connect = async (headers: StepHeaders): Promise<Remote> => {
    let raw = cachedCard && Date.now() - cachedCard.at < CARD_TTL_MS ? cachedCard.raw : undefined
    if (!raw) {
      try {
        raw = await fetchCard(cardUrl, fetchImpl, headers)
      } catch (err) {
        throw failure(`fetching the agent card ${safeUrl(cardUrl)}`, err)
      }
      cachedCard = { raw, at: Date.now() }
    }
    try {
      const client = await factory.createFromAgentCard(raw as unknown as AgentCard)
      const caps = raw.capabilities as { streaming?: unknown } | undefined
      return { client, streaming: caps?.streaming === true }
    } catch (err) {
      throw failure('reading the agent card', err)
    }
  }

  /**
   * Sends one message and returns once the task id is known. Streaming agents get
   * message:stream, whose open stream is handed to the next wait step through `live`; the
   * others get a non-blocking message:send. ctx.signal is deliberately not wired in: a send cut
   * off mid-flight may leave a task we could not name to cancel.
   */
  const send = async (
    remote: Remote,
    message: Record<string, unknown>,
    live: Live,
    answering: string | undefined,
    headers: StepHeaders,
  ): Promise<Sent> => {
    const sentAt = Date.now()
    const sent = (snapshot: A2aTaskSnapshot): Sent => ({
      snapshot,
      sentAt,
      ...(answering !== undefined ? { answering } : {}),
    })
    const request = SendMessageRequest.fromJSON({
      message: { role: 'ROLE_USER', ...message },
      configuration: { returnImmediately: true, historyLength: 0 },
    })
    try {
      if (!remote.streaming) {
        const result = await remote.client.sendMessage(
          request,
          requestOptions(AbortSignal.timeout(REQUEST_TIMEOUT_MS), headers),
        )
        const event: StreamResponse =
          'messageId' in result
            ? { payload: { $case: 'message', value: result } }
            : { payload: { $case: 'task', value: result } }
        return sent(apply(emptySnapshot(), event).snapshot)
      }
      const abort = new AbortController()
      const timer = setTimeout(() => abort.abort(new DeadlineExceeded()), REQUEST_TIMEOUT_MS)
      const events = remote.client.sendMessageStream(request, requestOptions(abort.signal, headers))
      let first: IteratorResult<StreamResponse>
      try {
        first = await events.next()
      } catch (err) {
        abort.abort()
        throw abort.signal.reason instanceof DeadlineExceeded
          ? new NetworkError(`no answer within ${REQUEST_TIMEOUT_MS} ms`)
          : err
      } finally {
        clearTimeout(timer)
      }
      if (first.done) throw new Error('the stream ended before the task was known')
      live.stream = { events, abort }
      return sent(apply(emptySnapshot(), first.value).snapshot)
    } catch (err) {
      throw failure('sending the message', err)
    }
  }

  /**
   * Follows a task until it settles (terminal, input-required, auth-required) or the deadline
   * passes. Network trouble is retried with backoff; MAX_FOLLOW_FAILURES in a row fail the run.
   */
  const follow = async (
    remote: Remote,
    sent: Sent,
    live: Live,
    ctx: AgentContext,
    headers: StepHeaders,
  ): Promise<A2aTaskSnapshot> => {
    let snap = sent.snapshot
    const emit = (events: Emitted[]) => {
      for (const e of events) ctx.emit({ taskId: snap.taskId, ...e })
    }
    const answered = (s: A2aTaskSnapshot) => s.state === 'input-required' && s.statusId === sent.answering
    const settled = (s: A2aTaskSnapshot) => SETTLED.has(s.state) && !answered(s)
    if (!answered(snap)) emit(announce(snap))
    if (settled(snap) || !snap.taskId) return snap

    const deadline = spec.timeout_ms
      ? AbortSignal.timeout(Math.max(0, sent.sentAt + spec.timeout_ms - Date.now()))
      : undefined
    const stop = deadline ? AbortSignal.any([ctx.signal, deadline]) : ctx.signal
    // Aborted: the run's business (cancel or hand-over). Deadline: this step ends the remote task and
    // fails with an error the journal can keep.
    const halt = async (): Promise<never> => {
      if (ctx.signal.aborted) throw abortReason(ctx.signal)
      await cancelRemote(remote, snap.taskId, headers)
      throw new GatewayError(
        'timeout',
        `${label} (${where}): remote task ${snap.taskId} did not settle within timeout_ms (${spec.timeout_ms} ms)`,
      )
    }
    let stream = live.take()
    let failures = 0
    let delay = POLL_FIRST_MS
    const onStop = () => stream?.abort.abort()
    stop.addEventListener('abort', onStop, { once: true })
    try {
      for (;;) {
        if (stop.aborted) return halt()
        if (stream || remote.streaming) {
          try {
            stream ??= resubscribe(remote, snap.taskId, stop, headers)
            for (let r = await stream.events.next(); !r.done; r = await stream.events.next()) {
              const step = apply(snap, r.value)
              snap = step.snapshot
              emit(step.emitted)
              failures = 0
              delay = POLL_FIRST_MS
              if (settled(snap)) return snap
            }
          } catch {
            // A broken or refused stream (e.g. the task is already terminal): ask tasks/get.
            if (stop.aborted) return halt()
          } finally {
            stream?.abort.abort()
            stream = undefined
          }
        }
        try {
          const task = await remote.client.getTask(
            { tenant: '', id: snap.taskId, historyLength: 0 },
            requestOptions(AbortSignal.any([stop, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]), headers),
          )
          const step = apply(snap, { payload: { $case: 'task', value: task } })
          snap = step.snapshot
          emit(step.emitted)
          failures = 0
          if (settled(snap)) return snap
        } catch (err) {
          if (stop.aborted) return halt()
          if (++failures >= MAX_FOLLOW_FAILURES) throw failure(`following task ${snap.taskId}`, err)
        }
        await sleep(delay, undefined, { signal: stop }).catch(() => undefined)
        delay = Math.min(Math.round(delay * 1.5), POLL_MAX_MS)
      }
    } finally {
      stop.removeEventListener('abort', onStop)
    }
  }

  const resubscribe = (
    remote: Remote,
    taskId: string,
    stop: AbortSignal,
    headers: StepHeaders,
  ): LiveStream => {
    const abort = new AbortController()
    const signal = AbortSignal.any([stop, abort.signal])
    const events = remote.client.resubscribeTask({ tenant: '', id: taskId }, requestOptions(signal, headers))
    return { events, abort }
  }

  /** Best effort: the run is failing or cancelled either way, so errors are swallowed. */
  const cancelRemote = async (
    remote: Remote | undefined,
    taskId: string,
    headers?: StepHeaders,
  ): Promise<void> => {
    if (!remote || !taskId) return
    await remote.client
      .cancelTask(
        { tenant: '', id: taskId, metadata: undefined },
        requestOptions(AbortSignal.timeout(CANCEL_TIMEOUT_MS), headers),
      )
      .catch(() => undefined)
  }

  const settledError = (snap: A2aTaskSnapshot): GatewayError =>
    new GatewayError(
      'upstream_error',
      `${label} (${where}): remote task ${snap.taskId || '(none)'} ended in state '${snap.state}'` +
        (snap.text ? `: ${scrub(snap.text)}` : ''),
    )

  const run = async (input: unknown, ctx: AgentContext): Promise<unknown> => {
    ctx.signal.throwIfAborted()
    // Connected on first use only: a replay of journaled steps needs no remote at all. The card
    // is fetched with the headers of the step that needed it first.
    let remote: Promise<Remote> | undefined
    const getRemote = (headers?: StepHeaders) => (remote ??= connect(headers))
    const live = new Live()

    let sent = await ctx.step('a2a:send', async (info: A2aStepInfo) =>
      send(
        await getRemote(info.headers),
        { messageId: info.idempotencyKey, parts: toParts(input) },
        live,
        undefined,
        info.headers,
      ),
    )
    try {
      for (let round = 0; ; round++) {
        ctx.signal.throwIfAborted()
        const current = sent
        const done = await ctx.step(round ? `a2a:wait:${round}` : 'a2a:wait', async (info: A2aStepInfo) =>
          follow(await getRemote(info.headers), current, live, ctx, info.headers),
        )
        if (done.state === 'completed') return outputOf(done)
        if (done.state !== 'input-required') {
          // Nobody will supply those credentials: do not leave the remote task waiting for them.
          if (done.state === 'auth-required')
            await cancelRemote(await getRemote().catch(() => undefined), done.taskId)
          throw settledError(done)
        }
        const answer = await ctx.interrupt(questionOf(name, done))
        sent = await ctx.step(`a2a:reply:${round + 1}`, async (info: A2aStepInfo) =>
          send(
            await getRemote(info.headers),
            {
              messageId: info.idempotencyKey,
              taskId: done.taskId,
              contextId: done.contextId,
              parts: toParts(answer),
            },
            live,
            done.statusId ?? '',
            info.headers,
          ),
        )
      }
    } catch (err) {
      const taskId = sent.snapshot.taskId
      const cancel = async () => {
        if (taskId) await cancelRemote(await getRemote().catch(() => undefined), taskId)
      }
      if (!ctx.signal.aborted) throw err
      // Cancelled while the remote works or waits for an answer: end the remote task too.
      if (!handedOver(ctx.signal)) await cancel()
      throw abortReason(ctx.signal)
    } finally {
      live.close()
    }
  }

  return defineAgent<unknown, unknown>({
    name,
    ...(spec.description !== undefined ? { description: spec.description } : {}),
    ...(spec.input !== undefined ? { input: spec.input } : {}),
    run,
  })
}

/** The stream a send step left open for the next wait step of the same execution. */
class Live {
  stream: LiveStream | undefined
  take(): LiveStream | undefined {
    const s = this.stream
    this.stream = undefined
    return s
  }
  close(): void {
    this.take()?.abort.abort()
  }
}

/** The interrupt payload of an input-required task. */
function questionOf(agent: string, snap: A2aTaskSnapshot): Record<string, unknown> {
  const data = (snap.message ?? []).filter((p) => 'data' in p).map((p) => p.data)
  return {
    question: snap.text ?? '',
    taskId: snap.taskId,
    agent,
    ...(data.length ? { data: data.length === 1 ? data[0] : data } : {}),
  }
}

/**
 * Input (or an interrupt answer) → message parts: a string or `{text}` (its only field) is a
 * text part, anything else one data part; nothing at all is an empty text part.
 */
export function toParts(value: unknown): A2aPart[] {
  if (typeof value === 'string') return [{ text: value }]
  if (value === undefined || value === null) return [{ text: '' }]
  if (
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { text?: unknown }).text === 'string'
  )
    return [{ text: (value as { text: string }).text }]
  return [{ data: value }]
}

/**
 * The run's output from a completed task: one data part in all its artifacts → that value;
 * only text parts → `{ text }` (parts concatenated, artifacts joined by newlines); anything
 * else → `{ artifacts }`. A task without artifacts answers with its status message instead.
 */
export function outputOf(snap: A2aTaskSnapshot): unknown {
  const fromArtifacts = snap.artifacts.some((a) => a.parts.length > 0)
  const groups = fromArtifacts ? snap.artifacts.map((a) => a.parts) : [snap.message ?? []]
  const parts = groups.flat()
  if (parts.length === 1 && parts[0] && 'data' in parts[0]) return parts[0].data
  if (parts.length > 0 && parts.every((p) => typeof p.text === 'string'))
    return { text: groups.map((g) => g.map((p) => p.text).join('')).join('\n') }
  if (fromArtifacts || parts.length === 0) return { artifacts: snap.artifacts }
  return { artifacts: [{ artifactId: 'message', parts }] }
}

type Emitted =
  | { type: typeof STATUS_EVENT; state: A2aTaskState; text?: string }
  | { type: typeof ARTIFACT_EVENT; [k: string]: unknown }

function emptySnapshot(): A2aTaskSnapshot {
  return { taskId: '', contextId: '', state: 'unknown', artifacts: [] }
}

/** Status (and artifacts) of a snapshot, for the start of a wait step. */
function announce(snap: A2aTaskSnapshot): Emitted[] {
  const out: Emitted[] = [statusEvent(snap)]
  for (const artifact of snap.artifacts)
    out.push({ type: ARTIFACT_EVENT, artifact, append: false, lastChunk: true })
  return out
}

function statusEvent(snap: A2aTaskSnapshot): Emitted {
  return { type: STATUS_EVENT, state: snap.state, ...(snap.text !== undefined ? { text: snap.text } : {}) }
}

/** Folds one stream event (or a tasks/get result wrapped as one) into a snapshot. */
function apply(
  prev: A2aTaskSnapshot,
  event: StreamResponse,
): { snapshot: A2aTaskSnapshot; emitted: Emitted[] } {
  const p = event.payload
  if (!p) return { snapshot: prev, emitted: [] }
  const next: A2aTaskSnapshot = { ...prev, artifacts: [...prev.artifacts] }
  const emitted: Emitted[] = []
  const setStatus = (status: TaskStatus | undefined) => {
    next.state = STATES[status?.state ?? TaskState.TASK_STATE_UNSPECIFIED] ?? 'unknown'
    const parts = status?.message?.parts.map(partJson) ?? []
    if (parts.length) next.message = parts
    else delete next.message
    const text = textOf(parts)
    if (text !== undefined) next.text = text
    else delete next.text
    next.statusId = `${status?.timestamp ?? ''}|${status?.message?.messageId ?? ''}`
    if (next.state !== prev.state || next.text !== prev.text) emitted.push(statusEvent(next))
  }
  switch (p.$case) {
    case 'task': {
      const task: Task = p.value
      next.taskId = task.id
      next.contextId = task.contextId
      setStatus(task.status)
      next.artifacts = task.artifacts.map(artifactJson)
      const before = new Map(prev.artifacts.map((a) => [a.artifactId, JSON.stringify(a)]))
      for (const a of next.artifacts)
        if (before.get(a.artifactId) !== JSON.stringify(a))
          emitted.push({ type: ARTIFACT_EVENT, artifact: a, append: false, lastChunk: true })
      break
    }
    case 'statusUpdate':
      next.taskId ||= p.value.taskId
      next.contextId ||= p.value.contextId
      setStatus(p.value.status)
      break
    case 'artifactUpdate': {
      next.taskId ||= p.value.taskId
      next.contextId ||= p.value.contextId
      if (!p.value.artifact) break
      const chunk = artifactJson(p.value.artifact)
      const i = next.artifacts.findIndex((a) => a.artifactId === chunk.artifactId)
      const old = next.artifacts[i]
      if (p.value.append && old) next.artifacts[i] = { ...old, parts: [...old.parts, ...chunk.parts] }
      else if (old) next.artifacts[i] = chunk
      else next.artifacts.push(chunk)
      emitted.push({
        type: ARTIFACT_EVENT,
        artifact: chunk,
        append: p.value.append,
        lastChunk: p.value.lastChunk,
      })
      break
    }
    case 'message': {
      // A bare reply: the exchange is complete, the message is the result.
      const parts = p.value.parts.map(partJson)
      next.contextId ||= p.value.contextId
      next.state = 'completed'
      next.message = parts
      const text = textOf(parts)
      if (text !== undefined) next.text = text
      emitted.push(statusEvent(next))
      break
    }
  }
  return { snapshot: next, emitted }
}

const partJson = (p: Part): A2aPart => Part.toJSON(p) as A2aPart
const artifactJson = (a: Artifact): A2aArtifact => Artifact.toJSON(a) as A2aArtifact

function textOf(parts: A2aPart[]): string | undefined {
  const texts = parts.flatMap((p) => (typeof p.text === 'string' ? [p.text] : []))
  return texts.length ? texts.join('') : undefined
}

/**
 * True when the run was aborted to continue elsewhere, not cancelled: the engine aborts with a
 * reason whose `why` is 'drain' (shutdown) or 'lost' (another worker holds the lease). Such a run
 * resumes from its journal and follows the same remote task, so that task must stay alive.
 */
function handedOver(signal: AbortSignal): boolean {
  const why = (signal.reason as { why?: unknown } | null | undefined)?.why
  return why === 'drain' || why === 'lost'
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason
  return r instanceof Error ? r : new DOMException(String(r ?? 'aborted'), 'AbortError')
}

/** `spec.url` is the card itself when its path ends in `.json`, else the agent's base URL. */
export function cardUrlOf(url: string): string {
  const u = new URL(url)
  if (u.pathname.endsWith('.json')) return u.href
  u.pathname = u.pathname.replace(/\/+$/, '') + CARD_PATH
  return u.href
}

async function fetchCard(
  url: string,
  fetchImpl: typeof fetch,
  headers: StepHeaders,
): Promise<Record<string, unknown>> {
  const res = await fetchImpl(url, {
    headers: { ...headers, Accept: 'application/json', 'A2A-Version': '1.0' },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  })
  if (!res.ok) throw new Error(`HTTP ${res.status}`)
  const raw: unknown = await res.json().catch(() => undefined)
  if (typeof raw !== 'object' || raw === null || typeof (raw as { name?: unknown }).name !== 'string')
    throw new Error('the response is not an agent card')
  return raw as Record<string, unknown>
}

/** fetch with the agent's headers on every request; network failures name the URL, never headers. */
function withHeaders(headers: Record<string, string>): typeof fetch {
  return async (input, init) => {
    const merged = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined))
    for (const [k, v] of Object.entries(headers)) merged.set(k, v)
    try {
      return await fetch(input, { ...init, headers: merged })
    } catch (err) {
      if (init?.signal?.aborted) throw err
      const target = input instanceof Request ? input.url : String(input)
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err)
      throw new NetworkError(`request to ${safeUrl(target)} failed: ${cause}`)
    }
  }
}
