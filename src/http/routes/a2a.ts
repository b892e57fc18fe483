import type { A2aService } from '../../a2a/service.js'
import type { RestOp } from '../../a2a/bindings.js'
import { ANSWER_ROLES, WRITE_ROLES } from '../../a2a/handler.js'
import type { Method, Route } from '../router.js'

/**
 * Every agent as an A2A server (docs/a2a.md): its card, JSON-RPC (A2A 1.0 and 0.3 method names)
 * at `/a2a/{agent}`, and the HTTP+JSON binding under it. All of them authenticate.
 */
export function a2aRoutes(a2a: A2aService): Route[] {
  const b = a2a.bindings
  const rest = (
    method: Method,
    path: string,
    op: RestOp,
    summary: string,
    roles?: Route['roles'],
  ): Route => ({
    method,
    path: `/a2a/{agent}${path}`,
    auth: 'required',
    ...(roles ? { roles } : {}),
    summary: `A2A HTTP+JSON: ${summary}`,
    handler: async (r) => {
      await b.rest(r, op)
      return undefined
    },
  })
  return [
    {
      method: 'GET',
      path: '/a2a',
      auth: 'required',
      summary: "the tenant's agents as A2A agent cards",
      handler: async (r) => {
        await b.list(r)
        return undefined
      },
    },
    {
      method: 'GET',
      path: '/a2a/{agent}/.well-known/agent-card.json',
      // Public for tenant `default` (discovery needs no key); a key selects its own tenant.
      auth: 'optional',
      summary: "an agent's A2A agent card (1.0 with A2A-Version: 1.0, else 0.3 with the 1.0 interfaces)",
      handler: async (r) => {
        await b.card(r)
        return undefined
      },
    },
    {
      method: 'POST',
      path: '/a2a/{agent}',
      auth: 'required',
      summary: 'A2A JSON-RPC endpoint of an agent (1.0 and 0.3 method names)',
      handler: async (r) => {
        await b.jsonRpc(r)
        return undefined
      },
    },
    rest('GET', '/extendedAgentCard', 'extendedCard', 'the authenticated extended agent card'),
    rest('POST', '/message:send', 'send', 'send a message (a new task, or the answer to one)', ANSWER_ROLES),
    rest('POST', '/message:stream', 'stream', 'send a message and stream the task', ANSWER_ROLES),
    rest('GET', '/tasks', 'list', "the caller's tasks of this agent"),
    rest('GET', '/tasks/{task}:subscribe', 'subscribe', "stream a task's updates"),
    rest('POST', '/tasks/{task}:subscribe', 'subscribe', "stream a task's updates"),
    rest('POST', '/tasks/{task}:cancel', 'cancel', 'cancel a task', WRITE_ROLES),
    rest('GET', '/tasks/{task}', 'get', 'one task'),
    rest(
      'POST',
      '/tasks/{task}/pushNotificationConfigs',
      'pushCreate',
      'add a push notification config',
      WRITE_ROLES,
    ),
    rest('GET', '/tasks/{task}/pushNotificationConfigs', 'pushList', "a task's push notification configs"),
    rest('GET', '/tasks/{task}/pushNotificationConfigs/{config}', 'pushGet', 'one push notification config'),
    rest(
      'DELETE',
      '/tasks/{task}/pushNotificationConfigs/{config}',
      'pushDelete',
      'delete a push notification config',
      WRITE_ROLES,
    ),
  ]
}
