import type { BuiltinConnector } from '../types.js'
import { SLACK_API } from './client.js'
import { readTools } from './read.js'
import { writeTools } from './write.js'

/**
 * Slack's Web API as tools, each call made with the calling user's own token (a user token from
 * OAuth v2 `user_scope`). `baseUrl` is the Web API base, `https://slack.com/api/` by default.
 */
export const slack: BuiltinConnector = {
  name: 'slack',
  description: 'Slack channels, messages, threads, reactions and users, acting as the connected user.',
  oauth: {
    provider: 'slack',
    defaultScopes: [
      'channels:read',
      'groups:read',
      'channels:history',
      'groups:history',
      'chat:write',
      'reactions:write',
      'users:read',
    ],
  },
  tools({ baseUrl }) {
    const base = (baseUrl ?? SLACK_API).replace(/\/*$/, '/')
    return [...readTools(base), ...writeTools(base)]
  },
}
