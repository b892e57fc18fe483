/**
 * Tracing and audit for outbound calls of `type: a2a` agents, added around the agent type
 * (src/agents/a2a.ts) without changing it: each of its journaled remote steps (`a2a:send`,
 * `a2a:wait`, `a2a:reply:N`, `a2a:wait:N`) that really executes gets a CLIENT span, child of the
 * run's span, and an audit row `a2a.call`, like a tool call; every HTTP request the step makes
 * carries that span as W3C `traceparent` (handed to the step as `A2aStepInfo.headers`: explicitly,
 * not through an AsyncLocalStorage, whose promise hooks would slow every promise in the process
 * once enabled). Replayed steps do nothing, so they record nothing.
 */
import { randomUUID } from 'node:crypto'
import { SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { A2aStepInfo } from '../agents/a2a.js'
import { defineAgent, type AgentContext, type StepInfo } from '../agents/define.js'
import type { CallContext } from '../context.js'
import { toGatewayError } from '../errors.js'
import type { AgentBuilders } from '../runs/agents.js'
import type { AuditWriter } from '../telemetry/audit.js'
import { TENANT_ATTR, type Telemetry } from '../telemetry/tracing.js'
import { safeUrl } from '../net/url.js'

/** Wraps the `a2a` agent builder so its remote calls are traced and audited. */
export function tracedA2aAgents(
  build: AgentBuilders['a2a'],
  deps: { telemetry: Telemetry; audit: AuditWriter },
): AgentBuilders['a2a'] {
  return (name, spec, headers) => {
    const def = build(name, spec, headers)
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
            const stepInfo: A2aStepInfo = { ...info, headers: deps.telemetry.inject(span) }
            const result = await fn(stepInfo)
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
