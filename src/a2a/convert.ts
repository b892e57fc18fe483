/**
 * Tasks are runs. This module derives the A2A view of a run (A2A 1.0 JSON: the Task, and the
 * stream events between two points of its event log) from the run record and its persisted
 * events, so every process that can read the store can serve any task, and a stream resumed
 * from the log sees exactly what a live one would have.
 *
 *   run status / event              A2A
 *   queued (first)                  TASK_STATE_SUBMITTED
 *   running, queued after resume    TASK_STATE_WORKING
 *   interrupt                       TASK_STATE_INPUT_REQUIRED (status message: the payload)
 *     … payload.type connection_required | auth_required   TASK_STATE_AUTH_REQUIRED
 *   end succeeded                   artifact `output` (the output), then TASK_STATE_COMPLETED
 *   end failed                      TASK_STATE_FAILED (status message: the error)
 *     … error.code forbidden | policy_denied               TASK_STATE_REJECTED
 *     … error.code connection_required | auth_required     TASK_STATE_AUTH_REQUIRED
 *   end cancelled                   TASK_STATE_CANCELED
 *   `artifact` events               artifact updates (text, data and file parts)
 *   `token` and other agent events  transient WORKING status updates (streams only, not pushed)
 */
import type { RunError, RunEvent, RunRecord } from '../store/runs.js'

/** A part in A2A 1.0 JSON: `{text}`, `{data}`, `{url}` or `{raw}` (base64), with optional media type, filename, metadata. */
export interface PartJson {
  text?: string
  data?: unknown
  url?: string
  raw?: string
  mediaType?: string
  filename?: string
  metadata?: Record<string, unknown>
}

export interface MessageJson {
  messageId: string
  role: 'ROLE_USER' | 'ROLE_AGENT'
  parts: PartJson[]
  taskId?: string
  contextId?: string
  metadata?: Record<string, unknown>
}

export interface ArtifactJson {
  artifactId: string
  name?: string
  description?: string
  parts: PartJson[]
  metadata?: Record<string, unknown>
}

export type A2aState =
  | 'submitted'
  | 'working'
  | 'input-required'
  | 'auth-required'
  | 'completed'
  | 'failed'
  | 'canceled'
  | 'rejected'

export interface StatusJson {
  state: string
  message?: MessageJson
  timestamp?: string
}

export interface TaskJson {
  id: string
  contextId: string
  status: StatusJson
  artifacts?: ArtifactJson[]
  history?: MessageJson[]
  metadata?: Record<string, unknown>
}

export interface StatusUpdateJson {
  taskId: string
  contextId: string
  status: StatusJson
  metadata?: Record<string, unknown>
}

export interface ArtifactUpdateJson {
  taskId: string
  contextId: string
  artifact: ArtifactJson
  append: boolean
  lastChunk: boolean
  metadata?: Record<string, unknown>
}

/** A StreamResponse in A2A 1.0 JSON. */
export type StreamJson =
  { task: TaskJson } | { statusUpdate: StatusUpdateJson } | { artifactUpdate: ArtifactUpdateJson }

/** One stream event derived from a run event; `transient` ones (tokens, progress) are not pushed. */
export interface Derived {
  seq: number
  event: StreamJson
  transient: boolean
}

/** Run error codes that mean a policy refused the work (A2A rejected). */
export const REJECTED_CODES: readonly string[] = ['forbidden', 'policy_denied']
/** Run error codes (and interrupt payload types) that mean the caller must connect an account first. */
export const AUTH_CODES: readonly string[] = ['connection_required', 'auth_required']

export const TERMINAL_STATES: ReadonlySet<A2aState> = new Set(['completed', 'failed', 'canceled', 'rejected'])
/** States at which a send returns and a stream closes: terminal, or waiting for the client. */
export const SETTLED_STATES: ReadonlySet<A2aState> = new Set([
  ...TERMINAL_STATES,
  'input-required',
  'auth-required',
])

const STATE_JSON: Record<A2aState, string> = {
  submitted: 'TASK_STATE_SUBMITTED',
  working: 'TASK_STATE_WORKING',
  'input-required': 'TASK_STATE_INPUT_REQUIRED',
  'auth-required': 'TASK_STATE_AUTH_REQUIRED',
  completed: 'TASK_STATE_COMPLETED',
  failed: 'TASK_STATE_FAILED',
  canceled: 'TASK_STATE_CANCELED',
  rejected: 'TASK_STATE_REJECTED',
}
const STATE_OF_JSON = new Map(Object.entries(STATE_JSON).map(([k, v]) => [v, k as A2aState]))

export function stateJson(s: A2aState): string {
  return STATE_JSON[s]
}

/** `TASK_STATE_WORKING` (or `working`) → `working`; undefined for anything else. */
export function parseState(s: string): A2aState | undefined {
  return STATE_OF_JSON.get(s) ?? (s in STATE_JSON ? (s as A2aState) : undefined)
}

/** Metadata key naming the Gatehouse event behind a transient status update. */
export const EVENT_META = 'io.gatehouse/event'
export const OUTPUT_ARTIFACT = 'output'

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** The state a finished run shows. */
export function endState(status: string, error?: RunError): A2aState {
  if (status === 'succeeded') return 'completed'
  if (status === 'cancelled') return 'canceled'
  if (error && REJECTED_CODES.includes(error.code)) return 'rejected'
  if (error && AUTH_CODES.includes(error.code)) return 'auth-required'
  return 'failed'
}

export function interruptState(payload: unknown): A2aState {
  return isObject(payload) && typeof payload.type === 'string' && AUTH_CODES.includes(payload.type)
    ? 'auth-required'
    : 'input-required'
}

/** The state of a run from its record alone (no events). */
export function stateOfRun(run: RunRecord): A2aState {
  switch (run.status) {
    case 'queued':
      return 'submitted'
    case 'running':
      return 'working'
    case 'interrupted':
      return interruptState(run.interrupt)
    default:
      return endState(run.status, run.error)
  }
}

/** A value as message parts: a string or `{text}` alone is a text part, anything else one data part. */
export function valueParts(value: unknown): PartJson[] {
  if (typeof value === 'string') return [{ text: value }]
  if (value === undefined || value === null) return []
  if (isObject(value) && Object.keys(value).length === 1 && typeof value.text === 'string')
    return [{ text: value.text }]
  return [{ data: value }]
}

/** The status message of an interrupt: its `question` as text, the payload as data. */
function interruptParts(payload: unknown): PartJson[] {
  if (typeof payload === 'string') return [{ text: payload }]
  if (!isObject(payload)) return valueParts(payload)
  const parts: PartJson[] = []
  if (typeof payload.question === 'string') parts.push({ text: payload.question })
  const rest = Object.keys(payload).filter((k) => k !== 'question')
  if (rest.length || !parts.length) parts.push({ data: payload })
  return parts
}

/**
 * One part from what an agent emitted, in A2A 1.0 JSON (`{text}`, `{data}`, `{url}`, `{raw}`)
 * or A2A 0.3 JSON (`{kind: 'text' | 'data' | 'file', …}`); undefined when it is neither.
 */
export function normalizePart(p: unknown): PartJson | undefined {
  if (!isObject(p)) return undefined
  const extra: Partial<PartJson> = {}
  if (isObject(p.metadata)) extra.metadata = p.metadata
  if (typeof p.text === 'string') return { text: p.text, ...extra }
  if ('data' in p && p.data !== undefined) return { data: p.data, ...extra }
  const file = p.kind === 'file' && isObject(p.file) ? p.file : p
  const mediaType = file.mediaType ?? file.mimeType
  const filename = file.filename ?? file.name
  if (typeof mediaType === 'string' && mediaType) extra.mediaType = mediaType
  if (typeof filename === 'string' && filename) extra.filename = filename
  const url = file.url ?? file.uri
  if (typeof url === 'string' && url) return { url, ...extra }
  const raw = file.raw ?? file.bytes
  if (typeof raw === 'string') return { raw, ...extra }
  return undefined
}

/**
 * The artifact an `artifact` event carries: `{artifact: {artifactId?, name?, parts}}` (what `a2a`
 * agents emit), or the same fields at the top level, or the shorthands `text`, `data` and
 * `file: {url | bytes, mediaType?, name?}`. Undefined when it holds no part.
 */
export function artifactOf(
  data: unknown,
  seq: number,
): { artifact: ArtifactJson; append: boolean; lastChunk: boolean } | undefined {
  if (!isObject(data)) return undefined
  const src = isObject(data.artifact) ? data.artifact : data
  let parts: PartJson[] = []
  if (Array.isArray(src.parts)) parts = src.parts.map(normalizePart).filter((p): p is PartJson => !!p)
  else {
    if (typeof src.text === 'string') parts.push({ text: src.text })
    if ('data' in src && src.data !== undefined) parts.push({ data: src.data })
    const f = src.file !== undefined ? normalizePart({ kind: 'file', file: src.file }) : undefined
    if (f) parts.push(f)
  }
  if (!parts.length) return undefined
  const artifact: ArtifactJson = {
    artifactId: typeof src.artifactId === 'string' && src.artifactId ? src.artifactId : `artifact-${seq}`,
    parts,
  }
  if (typeof src.name === 'string') artifact.name = src.name
  if (typeof src.description === 'string') artifact.description = src.description
  if (isObject(src.metadata)) artifact.metadata = src.metadata
  return { artifact, append: data.append === true, lastChunk: data.lastChunk !== false }
}

/**
 * Folds a run's event log into its A2A task. `apply` returns the stream events one run event
 * produces, so a stream is: the task as folded up to seq N, then `apply` of every event after N.
 */
export class TaskFold {
  state: A2aState = 'submitted'
  status: StatusJson
  seq = 0
  ended = false
  private readonly artifacts: ArtifactJson[] = []
  /** Agent questions (interrupts), in order; the answers come from the journal. */
  private readonly questions: MessageJson[] = []

  constructor(readonly run: RunRecord) {
    this.status = { state: STATE_JSON.submitted, timestamp: run.createdAt }
  }

  /** Continues from a known point of the log (the state there, the seq reached) without replaying it. */
  seed(state: A2aState, seq: number): void {
    this.state = state
    this.seq = seq
    this.status = { state: STATE_JSON[state], timestamp: this.run.updatedAt }
  }

  get taskId(): string {
    return this.run.id
  }

  get contextId(): string {
    return this.run.threadId ?? ''
  }

  private agentMessage(id: string, parts: PartJson[], metadata?: Record<string, unknown>): MessageJson {
    return {
      messageId: id,
      role: 'ROLE_AGENT',
      parts,
      taskId: this.taskId,
      ...(this.contextId ? { contextId: this.contextId } : {}),
      ...(metadata ? { metadata } : {}),
    }
  }

  private setState(state: A2aState, at: string, message?: MessageJson): Derived['event'] {
    this.state = state
    this.status = { state: STATE_JSON[state], ...(message ? { message } : {}), timestamp: at }
    return { statusUpdate: { taskId: this.taskId, contextId: this.contextId, status: this.status } }
  }

  private putArtifact(a: ArtifactJson, append: boolean): void {
    const i = this.artifacts.findIndex((x) => x.artifactId === a.artifactId)
    const old = this.artifacts[i]
    if (old && append) this.artifacts[i] = { ...old, parts: [...old.parts, ...a.parts] }
    else if (old) this.artifacts[i] = a
    else this.artifacts.push(a)
  }

  private artifactUpdate(a: ArtifactJson, append: boolean, lastChunk: boolean): Derived['event'] {
    return {
      artifactUpdate: { taskId: this.taskId, contextId: this.contextId, artifact: a, append, lastChunk },
    }
  }

  /** A transient WORKING update carrying an agent event (tokens as text, others as data). */
  private transient(e: RunEvent, parts: PartJson[]): Derived['event'] {
    const message = this.agentMessage(`${this.taskId}-${e.seq}`, parts, { [EVENT_META]: e.type })
    return {
      statusUpdate: {
        taskId: this.taskId,
        contextId: this.contextId,
        status: { state: STATE_JSON[this.state], message, timestamp: e.at },
        metadata: { [EVENT_META]: e.type },
      },
    }
  }

  apply(e: RunEvent): Derived[] {
    if (e.seq <= this.seq) return []
    this.seq = e.seq
    const out: Derived[] = []
    const push = (event: Derived['event'], transient = false) => out.push({ seq: e.seq, event, transient })
    const data = isObject(e.data) ? e.data : {}
    switch (e.type) {
      case 'status': {
        const next: A2aState = data.status === 'queued' && !data.resumed ? 'submitted' : 'working'
        if (next !== this.state || this.status.message) push(this.setState(next, e.at))
        break
      }
      case 'interrupt': {
        const message = this.agentMessage(`${this.taskId}-${e.seq}`, interruptParts(data.payload))
        this.questions.push(message)
        push(this.setState(interruptState(data.payload), e.at, message))
        break
      }
      case 'end': {
        this.ended = true
        const status = typeof data.status === 'string' ? data.status : 'failed'
        if (status === 'succeeded') {
          const parts = valueParts(data.output)
          if (parts.length) {
            const a: ArtifactJson = { artifactId: OUTPUT_ARTIFACT, name: OUTPUT_ARTIFACT, parts }
            this.putArtifact(a, false)
            push(this.artifactUpdate(a, false, true))
          }
          push(this.setState('completed', e.at))
          break
        }
        const error = isObject(data.error) ? (data.error as unknown as RunError) : undefined
        const state = endState(status, error)
        const parts: PartJson[] = error?.message ? [{ text: error.message }] : []
        if (error) parts.push({ data: { error } })
        push(
          this.setState(
            state,
            e.at,
            parts.length ? this.agentMessage(`${this.taskId}-${e.seq}`, parts) : undefined,
          ),
        )
        break
      }
      case 'artifact': {
        const got = artifactOf(data, e.seq)
        if (!got) {
          push(this.transient(e, [{ data: e.data }]), true)
          break
        }
        this.putArtifact(got.artifact, got.append)
        push(this.artifactUpdate(got.artifact, got.append, got.lastChunk))
        break
      }
      case 'token':
        push(this.transient(e, [{ text: typeof data.text === 'string' ? data.text : '' }]), true)
        break
      default:
        push(this.transient(e, [{ data: e.data }]), true)
    }
    return out
  }

  /**
   * The task as folded so far. `answers` are the values given to each interrupt (the journal's),
   * `historyLength` follows the spec (absent: all, 0: none, n: the last n messages).
   */
  task(
    opts: { answers?: readonly unknown[]; historyLength?: number; includeArtifacts?: boolean } = {},
  ): TaskJson {
    const task: TaskJson = {
      id: this.taskId,
      contextId: this.contextId,
      status: this.status,
      metadata: { 'io.gatehouse/agent': this.run.agent },
    }
    if (opts.includeArtifacts !== false) task.artifacts = [...this.artifacts]
    if (opts.historyLength !== 0) {
      const history: MessageJson[] = [
        {
          messageId: `${this.taskId}-input`,
          role: 'ROLE_USER',
          parts: valueParts(this.run.input),
          taskId: this.taskId,
          ...(this.contextId ? { contextId: this.contextId } : {}),
        },
      ]
      this.questions.forEach((q, i) => {
        history.push(q)
        const answers = opts.answers ?? []
        if (i < answers.length)
          history.push({
            messageId: `${this.taskId}-answer-${i + 1}`,
            role: 'ROLE_USER',
            parts: valueParts(answers[i]),
            taskId: this.taskId,
            ...(this.contextId ? { contextId: this.contextId } : {}),
          })
      })
      task.history = opts.historyLength === undefined ? history : history.slice(-opts.historyLength)
    }
    return task
  }
}

/**
 * A message's parts as a run input (SPEC "Code agents"): text parts become `text` (joined by
 * newlines), file parts `files` ([{url | bytes, mediaType?, name?}]), and a data part holding
 * an object is merged in at the top level (its keys win); other data goes to `data`.
 */
export function inputOf(parts: readonly PartJson[]): Record<string, unknown> {
  const texts: string[] = []
  const files: Record<string, unknown>[] = []
  const datas: unknown[] = []
  for (const p of parts) {
    if (typeof p.text === 'string') texts.push(p.text)
    else if (p.data !== undefined) datas.push(p.data)
    else if (p.url !== undefined || p.raw !== undefined)
      files.push({
        ...(p.url !== undefined ? { url: p.url } : { bytes: p.raw }),
        ...(p.mediaType ? { mediaType: p.mediaType } : {}),
        ...(p.filename ? { name: p.filename } : {}),
      })
  }
  const input: Record<string, unknown> = {}
  if (texts.length) input.text = texts.join('\n')
  if (files.length) input.files = files
  const objects = datas.filter(isObject)
  if (datas.length === 1 && objects.length === 1) Object.assign(input, objects[0])
  else if (datas.length) input.data = datas.length === 1 ? datas[0] : datas
  return input
}

/**
 * A message's parts as the answer to an interrupt: text alone is the string, one data part
 * alone is its value, anything else the object `inputOf` builds.
 */
export function answerOf(parts: readonly PartJson[]): unknown {
  if (parts.length && parts.every((p) => typeof p.text === 'string'))
    return parts.map((p) => p.text).join('\n')
  if (parts.length === 1 && parts[0]!.data !== undefined) return parts[0]!.data
  return inputOf(parts)
}
