/**
 * Tracing and audit for outbound calls of `type: a2a` agents, added around the agent type
 * (src/agents/a2a.ts) without changing it: each of its journaled remote steps (`a2a:send`,
 * `a2a:wait`, `a2a:reply:N`, `a2a:wait:N`) that really executes gets a CLIENT span, child of the
 * run's span, and an audit row `a2a.call`, like a tool call; every HTTP request the step makes
 * carries that span as W3C `traceparent`. Replayed steps do nothing, so they record nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { defineAgent, type AgentContext, type StepInfo } from '../agents/define.js'
import type { CallContext } from '../context.js'
import { toGatewayError } from '../errors.js'
import type { AgentBuilders } from '../runs/agents.js'
import type { AuditWriter } from '../telemetry/audit.js'
import { TENANT_ATTR, type Telemetry } from '../telemetry/tracing.js'
import { safeUrl } from '../net/url.js'

/** The trace headers of the step executing in this async context. */
const traceHeaders = new AsyncLocalStorage<Record<string, string>>()

/**
 * The agent's headers, plus `traceparent`/`tracestate` of the current step while one runs: the
 * agent reads its headers for every request (Object.entries), so a proxy adds them per request.
 */
function withTraceHeaders(base: Record<string, string>): Record<string, string> {
  const extra = (): Record<string, string> | undefined => traceHeaders.getStore()
  return new Proxy(base, {
    ownKeys: (t) => {
      const e = extra()
      return e ? [...new Set([...Reflect.ownKeys(t), ...Object.keys(e)])] : Reflect.ownKeys(t)
    },
    getOwnPropertyDescriptor: (t, k) => {
      const e = extra()
      if (typeof k === 'string' && e && k in e)
        return { value: e[k], enumerable: true, configurable: true, writable: false }
      return Reflect.getOwnPropertyDescriptor(t, k)
    },
    get: (t, k, receiver) => {
      const e = extra()
      if (typeof k === 'string' && e && k in e) return e[k]
      return Reflect.get(t, k, receiver) as unknown
    },
  })
}

/** Wraps the `a2a` agent builder so its remote calls are traced and audited. */
export function tracedA2aAgents(
  build: AgentBuilders['a2a'],
  deps: { telemetry: Telemetry; audit: AuditWriter },
): AgentBuilders['a2a'] {
  return (name, spec, headers) => {
    const def = build(name, spec, withTraceHeaders(headers))
    const remote = safeUrl(spec.url)
    const traced = (ctx: AgentContext): AgentContext => {
      const cc = (ctx as { callContext?: CallContext }).callContext
      const step = <T>(stepName: string, fn: (info: StepInfo) => Promise<T> | T): Promise<T> => {
        if (!stepName.startsWith('a2a:')) return ctx.step(stepName, fn)
        return ctx.step(stepName, async (info) => {
          const started = performance.now()
          const span = deps.telemetry.tracer.startSpan(
            `a2a ${stepName.replace(/^a2a:/, '')} ${name}`,
            {
              kind: SpanKind.CLIENT,
              attributes: {
                [TENANT_ATTR]: cc?.tenant ?? 'default',
                'gatehouse.agent': name,
                'gatehouse.run': ctx.runId,
                'a2a.step': stepName,
                'a2a.remote': remote,
                'gatehouse.attempt': info.attempt,
              },
            },
            deps.telemetry.extract(cc?.trace.traceparent, cc?.trace.tracestate),
          )
          let outcome: 'ok' | 'error' | 'cancelled' = 'ok'
          let errorCode: string | undefined
          try {
            const result = await traceHeaders.run(deps.telemetry.inject(span), () => fn(info))
            const snap =
              (result as { snapshot?: { taskId?: unknown; state?: unknown } } | undefined)?.snapshot ??
              (result as { taskId?: unknown; state?: unknown } | undefined)
            if (snap && typeof snap.taskId === 'string') span.setAttribute('a2a.task', snap.taskId)
            if (snap && typeof snap.state === 'string') span.setAttribute('a2a.state', snap.state)
            return result
          } catch (err) {
            outcome = ctx.signal.aborted ? 'cancelled' : 'error'
            errorCode = outcome === 'cancelled' ? 'cancelled' : toGatewayError(err).code
            span.recordException(err instanceof Error ? err : new Error(String(err)))
            throw err
          } finally {
            span.setStatus(
              outcome === 'ok'
                ? { code: SpanStatusCode.OK }
                : { code: SpanStatusCode.ERROR, message: errorCode },
            )
            span.end()
            if (cc)
              void deps.audit.write({
                id: randomUUID(),
                tenant: cc.tenant,
                at: new Date().toISOString(),
                principal: cc.principal.id,
                principalKind: cc.principal.kind,
                action: 'a2a.call',
                target: `${name}/${stepName}`,
                outcome,
                ...(errorCode ? { errorCode } : {}),
                latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
                requestId: ctx.runId,
                traceId: span.spanContext().traceId,
              })
          }
        })
      }
      return {
        get runId() {
          return ctx.runId
        },
        get agent() {
          return ctx.agent
        },
        get threadId() {
          return ctx.threadId
        },
        get state() {
          return ctx.state
        },
        get memory() {
          return ctx.memory
        },
        get signal() {
          return ctx.signal
        },
        ...(cc ? { callContext: cc } : {}),
        callTool: (tool, args) => ctx.callTool(tool, args),
        listTools: () => ctx.listTools(),
        step,
        emit: (event) => ctx.emit(event),
        interrupt: <T>(payload: unknown) => ctx.interrupt<T>(payload),
        setState: (patch) => ctx.setState(patch),
        recordUsage: (usage) => ctx.recordUsage(usage),
      }
    }
    return defineAgent({ ...def, run: (input, ctx) => def.run(input, traced(ctx)) })
  }
}
