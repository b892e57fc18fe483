import type { BuiltinConnector } from '../types.js'
import { GITHUB_API } from './client.js'
import { issueTools } from './issues.js'
import { pullTools } from './pulls.js'
import { repoTools } from './repos.js'

/**
 * GitHub's REST API as tools, each call made with the calling user's own token. `baseUrl` points
 * at GitHub Enterprise Server (`https://HOST/api/v3`) or a test fake.
 */
export const github: BuiltinConnector = {
  name: 'github',
  description: 'GitHub repositories, issues, pull requests and files, acting as the connected user.',
  oauth: { provider: 'github', defaultScopes: ['repo', 'read:user'] },
  tools({ baseUrl }) {
    const base = (baseUrl ?? GITHUB_API).replace(/\/+$/, '')
    return [...repoTools(base), ...issueTools(base), ...pullTools(base)]
  },
}
