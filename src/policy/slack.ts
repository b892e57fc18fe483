import { createHmac, timingSafeEqual } from 'node:crypto'
import { LogLevel, WebClient, type Logger as SlackLogger } from '@slack/web-api'
import { createContext, type CallContext, type Role } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import { systemContext } from '../context.js'
import type { ApprovalRecord, ApprovalStore } from '../store/policy.js'
import type { ApprovalNotifier, ApprovalService } from './approvals.js'

export interface SlackOptions {
  /** Web API base URL, ending in `/` (default https://slack.com/api/). */
  apiUrl?: string
  token: string
  signingSecret: string
  /** Tenant → channel; `default` serves every tenant without its own. */
  channels: Record<string, string>
  /** Slack user id → the principal deciding when that user clicks. */
  users: Record<string, { principal: string; roles: string[]; tenants: string[] }>
  toleranceSeconds: number
  logger: Logger
  store: ApprovalStore
}

const EDIT_CALLBACK = 'gatehouse_edit'

/**
 * Verifies a Slack request signature (v0): `v0=` + HMAC-SHA256(signing secret,
 * `v0:{timestamp}:{raw body}`), over the raw bytes as received, with a replay window on the
 * timestamp. Throws unauthenticated when anything is off.
 */
export function verifySlackSignature(
  secret: string,
  raw: Buffer,
  timestamp: string | undefined,
  signature: string | undefined,
  toleranceSeconds: number,
  nowMs = Date.now(),
): void {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp))
    throw new GatewayError('unauthenticated', 'missing Slack signature headers')
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceSeconds)
    throw new GatewayError('unauthenticated', 'Slack request timestamp is outside the allowed window')
  const mac = createHmac('sha256', secret)
  mac.update(`v0:${timestamp}:`)
  mac.update(raw)
  const want = Buffer.from(`v0=${mac.digest('hex')}`)
  const got = Buffer.from(signature)
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new GatewayError('unauthenticated', 'Slack request signature does not match')
}

/** Slack's logger interface over pino. */
function slackLogger(logger: Logger): SlackLogger {
  let level = LogLevel.WARN
  return {
    debug: (...m: unknown[]) => logger.debug({ slack: m }, 'slack'),
    info: (...m: unknown[]) => logger.debug({ slack: m }, 'slack'),
    warn: (...m: unknown[]) => logger.warn({ slack: m }, 'slack'),
    error: (...m: unknown[]) => logger.error({ slack: m }, 'slack'),
    setLevel: (l: LogLevel) => {
      level = l
    },
    getLevel: () => level,
    setName: () => {},
  }
}

const json = (v: unknown) => JSON.stringify(v, null, 2)

function requestBlocks(a: ApprovalRecord): unknown[] {
  const value = `${a.tenant}:${a.id}`
  return [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text:
          `*Approval needed* for \`${a.tool}\` (tenant ${a.tenant})\n` +
          `Requested by ${a.requester.kind}:${a.requester.id}` +
          `${a.requester.onBehalfOf ? ` for ${a.requester.onBehalfOf.kind}:${a.requester.onBehalfOf.id}` : ''}` +
          `${a.ruleReason ? `\nWhy: ${a.ruleReason}` : ''}\nExpires ${a.expiresAt}`,
      },
    },
    { type: 'section', text: { type: 'mrkdwn', text: '```' + json(a.args) + '```' } },
    {
      type: 'actions',
      block_id: 'gatehouse_approval',
      elements: [
        {
          type: 'button',
          action_id: 'approve',
          style: 'primary',
          text: { type: 'plain_text', text: 'Approve' },
          value,
        },
        {
          type: 'button',
          action_id: 'reject',
          style: 'danger',
          text: { type: 'plain_text', text: 'Reject' },
          value,
        },
        { type: 'button', action_id: 'edit', text: { type: 'plain_text', text: 'Edit…' }, value },
      ],
    },
  ]
}

function outcomeText(a: ApprovalRecord): string {
  const how =
    a.status === 'expired'
      ? 'expired without a decision'
      : `${a.decision === 'edit' ? 'approved with edits' : a.status} by ${a.decider ?? 'someone'}${a.reason ? `: ${a.reason}` : ''}`
  return `\`${a.tool}\` (approval ${a.id}) ${how}`
}

/**
 * Slack approvals: each request is posted with Approve / Reject / Edit buttons; clicks and the
 * edit modal come back as signed interaction payloads to `/hooks/slack/interactions`; the message
 * is updated with the outcome, whatever channel decided.
 */
export class SlackApprovals implements ApprovalNotifier {
  private readonly client: WebClient
  private approvals?: ApprovalService

  constructor(private readonly o: SlackOptions) {
    this.client = new WebClient(o.token, {
      ...(o.apiUrl ? { slackApiUrl: o.apiUrl.endsWith('/') ? o.apiUrl : `${o.apiUrl}/` } : {}),
      logger: slackLogger(o.logger),
      logLevel: LogLevel.WARN,
      retryConfig: { retries: 2, factor: 2, minTimeout: 100, maxTimeout: 1000 },
      timeout: 10_000,
    })
  }

  attach(approvals: ApprovalService): void {
    this.approvals = approvals
    approvals.addNotifier(this)
  }

  private channelFor(tenant: string): string | undefined {
    return this.o.channels[tenant] ?? this.o.channels.default
  }

  async requested(a: ApprovalRecord): Promise<void> {
    const channel = this.channelFor(a.tenant)
    if (!channel) return
    const res = await this.client.chat.postMessage({
      channel,
      text: `Approval needed for ${a.tool} (approval ${a.id})`,
      blocks: requestBlocks(a) as never,
    })
    if (res.ok && res.ts)
      await this.o.store.setNotice(systemContext(a.tenant), a.id, {
        channel: res.channel ?? channel,
        ts: res.ts,
      })
  }

  async decided(a: ApprovalRecord): Promise<void> {
    // The notice is written after the post: read the current record.
    const cur = (await this.o.store.get(systemContext(a.tenant), a.id)) ?? a
    const notice = cur.notice as { channel?: string; ts?: string } | undefined
    if (!notice?.channel || !notice.ts) return
    const text = outcomeText(cur)
    await this.client.chat.update({
      channel: notice.channel,
      ts: notice.ts,
      text,
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] as never,
    })
  }

  /** The Gatehouse caller a Slack user acts as in a tenant; forbidden when unmapped. */
  private deciderCtx(slackUser: string | undefined, tenant: string): CallContext {
    const m = slackUser ? this.o.users[slackUser] : undefined
    if (!m || !m.tenants.includes(tenant))
      throw new GatewayError(
        'forbidden',
        `Slack user ${slackUser ?? '(unknown)'} may not decide approvals in tenant ${tenant}`,
      )
    const i = m.principal.indexOf(':')
    return createContext({
      tenant,
      principal: { kind: m.principal.slice(0, i) as 'user' | 'service', id: m.principal.slice(i + 1) },
      roles: m.roles as Role[],
    })
  }

  /**
   * One interaction request: verified, then a button click (approve, reject, or open the edit
   * modal) or an edit modal submitted. Returns the JSON Slack expects back (or nothing).
   */
  async interaction(raw: Buffer, headers: Record<string, string | string[] | undefined>): Promise<unknown> {
    const h = (n: string) => {
      const v = headers[n]
      return Array.isArray(v) ? v[0] : v
    }
    verifySlackSignature(
      this.o.signingSecret,
      raw,
      h('x-slack-request-timestamp'),
      h('x-slack-signature'),
      this.o.toleranceSeconds,
    )
    const form = new URLSearchParams(raw.toString('utf8'))
    let payload: Record<string, any>
    try {
      payload = JSON.parse(form.get('payload') ?? '') as Record<string, any>
    } catch {
      throw new GatewayError('bad_request', 'a Slack interaction carries a JSON payload field')
    }
    if (!this.approvals) throw new GatewayError('unavailable', 'approvals are not ready')
    if (payload.type === 'block_actions') {
      const action = (payload.actions as { action_id?: string; value?: string }[] | undefined)?.[0]
      const [tenant, id] = String(action?.value ?? '').split(':')
      if (!tenant || !id || !action?.action_id)
        throw new GatewayError('bad_request', 'not a Gatehouse approval action')
      const ctx = this.deciderCtx(payload.user?.id as string | undefined, tenant)
      if (action.action_id === 'edit') {
        const a = await this.approvals.get(ctx, id)
        if (!this.approvals.canDecide(ctx, a))
          throw new GatewayError('forbidden', `you may not decide approval ${id}`)
        await this.client.views.open({
          trigger_id: String(payload.trigger_id),
          view: {
            type: 'modal',
            callback_id: EDIT_CALLBACK,
            private_metadata: `${tenant}:${id}`,
            title: { type: 'plain_text', text: 'Edit and approve' },
            submit: { type: 'plain_text', text: 'Approve' },
            blocks: [
              {
                type: 'input',
                block_id: 'args',
                label: { type: 'plain_text', text: `Arguments of ${a.tool} (JSON)` },
                element: {
                  type: 'plain_text_input',
                  action_id: 'args',
                  multiline: true,
                  initial_value: json(a.args),
                },
              },
              {
                type: 'input',
                block_id: 'reason',
                optional: true,
                label: { type: 'plain_text', text: 'Reason' },
                element: { type: 'plain_text_input', action_id: 'reason' },
              },
            ],
          },
        })
        return undefined
      }
      if (action.action_id !== 'approve' && action.action_id !== 'reject')
        throw new GatewayError('bad_request', `unknown action ${action.action_id}`)
      await this.approvals.decide(ctx, id, { decision: action.action_id }, 'slack')
      return undefined
    }
    if (payload.type === 'view_submission' && payload.view?.callback_id === EDIT_CALLBACK) {
      const [tenant, id] = String(payload.view.private_metadata ?? '').split(':')
      if (!tenant || !id) throw new GatewayError('bad_request', 'edit modal without its approval')
      const ctx = this.deciderCtx(payload.user?.id as string | undefined, tenant)
      const values = payload.view.state?.values ?? {}
      const text = values.args?.args?.value as string | undefined
      const reason = values.reason?.reason?.value as string | undefined
      let args: unknown
      try {
        args = JSON.parse(text ?? '')
      } catch {
        return { response_action: 'errors', errors: { args: 'not valid JSON' } }
      }
      if (!args || typeof args !== 'object' || Array.isArray(args))
        return { response_action: 'errors', errors: { args: 'the arguments are a JSON object' } }
      try {
        await this.approvals.decide(
          ctx,
          id,
          { decision: 'edit', args: args as Record<string, unknown>, ...(reason ? { reason } : {}) },
          'slack',
        )
      } catch (err) {
        // Schema or policy problems go back into the modal, next to the field.
        if (err instanceof GatewayError && (err.code === 'bad_request' || err.code === 'forbidden'))
          return { response_action: 'errors', errors: { args: err.message.slice(0, 2000) } }
        throw err
      }
      return undefined
    }
    throw new GatewayError('bad_request', `unsupported Slack interaction ${String(payload.type)}`)
  }
}
