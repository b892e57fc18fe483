import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { BUILTIN_CONNECTORS } from '../../connectors/index.js'
import { systemContext } from '../../src/context.js'
import { parseManifestText } from '../../src/manifests/parse.js'
import { validateManifests } from '../../src/manifests/validate.js'

const read = (name: string) =>
  parse(readFileSync(fileURLToPath(new URL(`../../manifests/examples/${name}`, import.meta.url)), 'utf8'))

describe('example connector manifests', () => {
  for (const file of ['github.yaml', 'slack.yaml']) {
    it(`${file} names a bundled connector, its provider and every scope its tools need`, () => {
      const m = read(file)
      expect(m).toMatchObject({
        apiVersion: 'gatehouse/v1',
        kind: 'Connector',
        spec: { transport: 'builtin' },
      })
      const connector = BUILTIN_CONNECTORS[m.spec.builtin]
      expect(connector, `builtin ${m.spec.builtin}`).toBeDefined()
      expect(m.metadata.name).toBe(connector!.name)
      expect(m.spec.auth).toMatchObject({ type: 'oauth2', provider: connector!.oauth.provider })
      expect(m.spec.auth.scopes).toEqual(expect.arrayContaining(connector!.oauth.defaultScopes))
      expect(m.spec.auth.client_secret).toEqual({ env: expect.stringMatching(/^[A-Z_]+$/) })
    })
  }

  it('github-remote-mcp.yaml proxies GitHub’s remote MCP server with per-user OAuth', () => {
    const m = read('github-remote-mcp.yaml')
    expect(m.spec).toMatchObject({
      transport: 'http',
      url: 'https://api.githubcopilot.com/mcp/',
      auth: { type: 'oauth2', provider: 'github', client_secret: { env: 'GITHUB_CLIENT_SECRET' } },
    })
    expect(m.spec.auth.scopes).toContain('repo')
  })

  it('every example manifest passes the gateway’s own validation', () => {
    for (const file of ['github.yaml', 'slack.yaml', 'github-remote-mcp.yaml']) {
      const path = fileURLToPath(new URL(`../../manifests/examples/${file}`, import.meta.url))
      const { issues } = validateManifests(
        systemContext('default'),
        parseManifestText(readFileSync(path, 'utf8'), file, '/'),
        [],
      )
      expect(issues, file).toEqual([])
    }
  })
})
