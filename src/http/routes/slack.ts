import { GatewayError } from '../../errors.js'
import type { SlackApprovals } from '../../policy/slack.js'
import type { Route } from '../router.js'

/**
 * Slack's interactivity request URL. Unauthenticated by bearer token: every POST must carry a
 * valid Slack signature (v0 HMAC of the raw body with the app's signing secret).
 */
export function slackRoutes(deps: { slack: SlackApprovals | undefined }): Route[] {
  return [
    {
      method: 'GET',
      path: '/hooks/slack/interactions',
      auth: 'none',
      summary: 'says whether Slack approvals are configured (Slack POSTs signed interactions here)',
      handler: async () => ({
        body: { endpoint: 'slack-interactions', method: 'POST', configured: Boolean(deps.slack) },
      }),
    },
    {
      method: 'POST',
      path: '/hooks/slack/interactions',
      auth: 'none',
      summary: 'signed Slack interaction payloads: approval buttons and the edit modal',
      handler: async (r) => {
        if (!deps.slack)
          throw new GatewayError(
            'not_supported',
            'Slack approvals are not configured on this gateway; set slack (tokenEnv, signingSecretEnv, channels) in the config',
          )
        const out = await deps.slack.interaction(await r.body(), r.req.headers)
        return out === undefined ? { status: 200 } : { body: out }
      },
    },
  ]
}
