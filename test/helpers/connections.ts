import { expect } from 'vitest'
import { textOf, type TestGateway } from './gateway.js'
import type { TestOAuthProvider } from './oauth-provider.js'

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
