import { expect } from 'vitest'
import { textOf, type TestGateway } from './gateway.js'
import { startOAuthProvider, type TestOAuthProvider } from './oauth-provider.js'
// @ts-expect-error — plain JS fixture
import { startBearerUpstream } from '../fixtures/bearer-upstream.mjs'

/** Calls a tool as `key` over MCP (a client that declares no URL elicitation). */
export async function callTool(
  g: TestGateway,
  key: string,
  name: string,
  args: Record<string, unknown> = {},
) {
  const c = await g.client({ key })
  try {
    return await c.callTool({ name, arguments: args })
  } finally {
    await c.close()
  }
}

/** The personal connect link in a tool error (or any text). */
export function connectUrlOf(result: unknown): string {
  const m = /(http:\/\/\S+\/oauth\/connect\/[^\s"]+)/.exec(textOf(result))
  if (!m) throw new Error(`no connect link in: ${textOf(result)}`)
  return m[1]!
}

/**
 * The browser side of a connect flow up to the provider's redirect back: opens the connect link
 * (302 + binding cookie), logs in and consents at the provider as `user`.
 */
export async function startFlow(
  provider: TestOAuthProvider,
  url: string,
  user: string,
  headers: Record<string, string> = {},
): Promise<{ callback: URL; cookie: string }> {
  const res = await fetch(url, { redirect: 'manual', headers })
  expect(res.status, await res.clone().text()).toBe(302)
  const cookie = res.headers.getSetCookie()[0]!.split(';')[0]!
  const callback = await provider.authorize(res.headers.get('location')!, user)
  return { callback, cookie }
}

/** Opens the provider's redirect back at the gateway's callback (as JSON). */
export async function finishFlow(callback: URL, headers: Record<string, string>) {
  const res = await fetch(callback, { headers: { accept: 'application/json', ...headers } })
  return { status: res.status, body: (await res.json()) as any }
}

/** The whole flow: the tool's connect link, the provider as `user`, the callback: connected. */
export async function connectThroughTool(
  g: TestGateway,
  provider: TestOAuthProvider,
  key: string,
  tool: string,
  user: string,
): Promise<void> {
  const { callback, cookie } = await startFlow(provider, connectUrlOf(await callTool(g, key, tool)), user)
  const done = await finishFlow(callback, { cookie })
  expect(done.status, JSON.stringify(done.body)).toBe(200)
}

/**
 * The two parties of a brokered connector: an OAuth provider with the gateway's confidential
 * client `gatehouse` (redirecting to `gatewayUrl`), and an upstream MCP server that requires its
 * bearer tokens (scope `mcp:read`). `onRefresh` is told of every refresh-token grant.
 */
export async function startBrokeringPeers<U>(opts: {
  secret: string
  gatewayUrl: string
  onRefresh: () => void
}): Promise<{ provider: TestOAuthProvider; upstream: U }> {
  const provider = await startOAuthProvider({
    clients: [
      {
        client_id: 'gatehouse',
        client_secret: opts.secret,
        redirect_uris: [`${opts.gatewayUrl}/oauth/callback`],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
  })
  provider.provider.on('grant.success', (ctx) => {
    if ((ctx.oidc.params as { grant_type?: string }).grant_type === 'refresh_token') opts.onRefresh()
  })
  const upstream = (await startBearerUpstream({
    issuer: provider.issuer,
    jwksUri: `${provider.issuer}/jwks`,
    scopes: ['mcp:read'],
  })) as U
  return { provider, upstream }
}

/** Calls the bearer upstream's `whoami` as `key`: the identity the upstream saw. */
export async function whoami(g: TestGateway, key: string) {
  const r = await callTool(g, key, 'up__whoami')
  expect(r.isError, textOf(r)).toBeFalsy()
  return JSON.parse(textOf(r)) as { sub: string; scope: string; aud: string }
}
