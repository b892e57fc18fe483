import type { CallContext } from '../context.js'
import { GatewayError } from '../errors.js'
import { ownerOf } from '../store/owner.js'
import type { LimitStore } from '../store/policy.js'
import { auditId, type AuditWriter } from '../telemetry/audit.js'
import {
  agentOf,
  type CallFacts,
  type CompiledBudget,
  type CompiledRateLimit,
  type Per,
  type TenantPolicy,
  type Window,
} from './rules.js'

/** Price of a model's tokens, in US dollars per million tokens. */
export interface ModelPrice {
  input_per_mtok: number
  output_per_mtok: number
}

export interface LimitsOptions {
  store: LimitStore
  audit: AuditWriter
  /** Model name → price; a model not listed costs nothing (its tokens still count). */
  prices: Record<string, ModelPrice>
}

/** Whose counter a budget or rate limit uses for this caller; undefined: it does not apply. */
export function subjectOf(per: Per, ctx: CallContext): string | undefined {
  if (per === 'tenant') return ctx.tenant
  if (per === 'user') return ownerOf(ctx)
  const agent = agentOf(ctx)
  return agent === undefined ? undefined : `agent:${agent}`
}

/** The counter period a window falls in, in UTC, and when it ends. */
export function periodOf(window: Window, nowMs: number): { period: string; endsMs: number } {
  const d = new Date(nowMs)
  const y = d.getUTCFullYear()
  const mo = d.getUTCMonth()
  const day = d.getUTCDate()
  const h = d.getUTCHours()
  const mi = d.getUTCMinutes()
  switch (window) {
    case 'minute':
      return { period: d.toISOString().slice(0, 16), endsMs: Date.UTC(y, mo, day, h, mi + 1) }
    case 'hour':
      return { period: d.toISOString().slice(0, 13), endsMs: Date.UTC(y, mo, day, h + 1) }
    case 'day':
      return { period: d.toISOString().slice(0, 10), endsMs: Date.UTC(y, mo, day + 1) }
    case 'month':
      return { period: d.toISOString().slice(0, 7), endsMs: Date.UTC(y, mo + 1, 1) }
    case 'total':
      return { period: 'total', endsMs: Number.POSITIVE_INFINITY }
  }
}

export interface LimitDetail {
  kind: 'budget' | 'rate_limit'
  name: string
  per: Per
  subject: string
  metric: 'tool_calls' | 'tokens' | 'cost_usd' | 'per_minute'
  limit: number
  used?: number
  window?: Window
  retry_after_seconds: number
}

/** The error a caller over a limit gets: 429 over HTTP (Retry-After), -32029 with the limit as data over JSON-RPC. */
export class LimitExceededError extends GatewayError {
  constructor(readonly limit: LimitDetail) {
    super(
      'rate_limited',
      limit.kind === 'rate_limit'
        ? `rate limit ${limit.name} (${limit.limit} calls per minute per ${limit.per}) exceeded; retry after ${limit.retry_after_seconds} s`
        : `budget ${limit.name} (${limit.metric} ${limit.metric === 'cost_usd' ? `$${limit.limit}` : limit.limit} per ${limit.window} per ${limit.per}) is spent; retry after ${limit.retry_after_seconds} s`,
      { details: { limit, retry_after_seconds: limit.retry_after_seconds } },
    )
    this.name = 'LimitExceededError'
  }

  get retryAfterSeconds(): number {
    return this.limit.retry_after_seconds
  }
}

const counterKey = (tenant: string, id: string, subject: string, metric: string) =>
  `${tenant}|${id}|${subject}|${metric}`

const retryAfter = (endsMs: number, nowMs: number) =>
  Number.isFinite(endsMs) ? Math.max(1, Math.ceil((endsMs - nowMs) / 1000)) : 86_400

/**
 * Budgets and rate limits over durable counters. Tool calls are reserved before they run
 * (a conditional increment), so concurrent calls never overspend a call budget; model tokens and
 * cost are known only afterwards, so a call is admitted while the spend is under the limit and
 * the overspend is at most what the calls already admitted add.
 */
export class Limits {
  constructor(private readonly o: LimitsOptions) {}

  /** Admits one tool call, or throws LimitExceededError (after writing an audit row). */
  async admitCall(p: TenantPolicy, f: CallFacts): Promise<void> {
    const now = Date.now()
    for (const rl of p.rateLimits) await this.takeToken(rl, f, now)
    const reserved: { key: string; period: string }[] = []
    try {
      for (const b of p.budgets) {
        if (!b.matches(f)) continue
        const subject = subjectOf(b.per, f.ctx)
        if (subject === undefined) continue
        const { period, endsMs } = periodOf(b.window, now)
        if (b.toolCalls !== undefined) {
          const key = counterKey(f.ctx.tenant, b.id, subject, 'calls')
          const r = await this.o.store.reserve(key, period, 1, b.toolCalls)
          if (!r.ok)
            this.exceeded(f.ctx, b, subject, 'tool_calls', b.toolCalls, r.used, retryAfter(endsMs, now))
          reserved.push({ key, period })
        }
        await this.checkSpend(f.ctx, b, subject, period, endsMs, now)
      }
    } catch (err) {
      for (const r of reserved) await this.o.store.add(r.key, r.period, -1)
      throw err
    }
  }

  /** Admission for model spend (tokens, cost) of a caller: throws while a budget is spent. */
  async admitSpend(p: TenantPolicy, ctx: CallContext): Promise<void> {
    const now = Date.now()
    for (const b of p.budgets) {
      const subject = subjectOf(b.per, ctx)
      if (subject === undefined) continue
      const { period, endsMs } = periodOf(b.window, now)
      await this.checkSpend(ctx, b, subject, period, endsMs, now)
    }
  }

  /** Counts model usage against every token and cost budget of the caller. */
  async recordUsage(
    p: TenantPolicy,
    ctx: CallContext,
    usage: { model: string; promptTokens: number; completionTokens: number },
  ): Promise<void> {
    const now = Date.now()
    const price = this.o.prices[usage.model]
    const tokens = usage.promptTokens + usage.completionTokens
    const micros = price
      ? Math.round(usage.promptTokens * price.input_per_mtok + usage.completionTokens * price.output_per_mtok)
      : 0
    for (const b of p.budgets) {
      const subject = subjectOf(b.per, ctx)
      if (subject === undefined) continue
      const { period } = periodOf(b.window, now)
      if (b.tokens !== undefined && tokens > 0)
        await this.o.store.add(counterKey(ctx.tenant, b.id, subject, 'tokens'), period, tokens)
      if (b.costMicros !== undefined && micros > 0)
        await this.o.store.add(counterKey(ctx.tenant, b.id, subject, 'cost'), period, micros)
    }
  }

  private async checkSpend(
    ctx: CallContext,
    b: CompiledBudget,
    subject: string,
    period: string,
    endsMs: number,
    now: number,
  ): Promise<void> {
    if (b.tokens !== undefined) {
      const used = await this.o.store.used(counterKey(ctx.tenant, b.id, subject, 'tokens'), period)
      if (used >= b.tokens) this.exceeded(ctx, b, subject, 'tokens', b.tokens, used, retryAfter(endsMs, now))
    }
    if (b.costMicros !== undefined) {
      const used = await this.o.store.used(counterKey(ctx.tenant, b.id, subject, 'cost'), period)
      if (used >= b.costMicros)
        this.exceeded(ctx, b, subject, 'cost_usd', b.costMicros / 1e6, used / 1e6, retryAfter(endsMs, now))
    }
  }

  private async takeToken(rl: CompiledRateLimit, f: CallFacts, now: number): Promise<void> {
    if (!rl.matches(f)) return
    const subject = subjectOf(rl.per, f.ctx)
    if (subject === undefined) return
    const r = await this.o.store.take(
      counterKey(f.ctx.tenant, rl.id, subject, 'bucket'),
      rl.burst,
      rl.perMinute / 60_000,
      now,
    )
    if (r.ok) return
    const limit: LimitDetail = {
      kind: 'rate_limit',
      name: rl.id,
      per: rl.per,
      subject,
      metric: 'per_minute',
      limit: rl.perMinute,
      retry_after_seconds: Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
    }
    this.auditExceeded(f.ctx, limit)
    throw new LimitExceededError(limit)
  }

  private exceeded(
    ctx: CallContext,
    b: CompiledBudget,
    subject: string,
    metric: 'tool_calls' | 'tokens' | 'cost_usd',
    limitValue: number,
    used: number,
    retryAfterSeconds: number,
  ): never {
    const limit: LimitDetail = {
      kind: 'budget',
      name: b.id,
      per: b.per,
      subject,
      metric,
      limit: limitValue,
      used,
      window: b.window,
      retry_after_seconds: retryAfterSeconds,
    }
    this.auditExceeded(ctx, limit)
    throw new LimitExceededError(limit)
  }

  private auditExceeded(ctx: CallContext, limit: LimitDetail): void {
    void this.o.audit.write({
      id: auditId(),
      tenant: ctx.tenant,
      at: new Date().toISOString(),
      principal: ctx.principal.id,
      principalKind: ctx.principal.kind,
      action: limit.kind === 'budget' ? 'budget.exceeded' : 'rate_limit.exceeded',
      target: `${limit.name}/${limit.metric}`,
      outcome: 'denied',
      errorCode: 'rate_limited',
      requestId: ctx.requestId,
    })
  }
}
