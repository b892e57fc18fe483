import { GatewayError } from '../errors.js'
import { one, type ParsedArgs } from './args.js'

/** Where the admin CLI commands send requests, and with which key. */
export function target(args: ParsedArgs): { url: string; key: string } {
  const url = one(args, 'url') ?? process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:7420'
  const key = one(args, 'key') ?? process.env.GATEHOUSE_KEY ?? process.env.GATEHOUSE_ADMIN_KEY
  if (!key)
    throw new GatewayError(
      'bad_request',
      'no API key: pass --key KEY or set GATEHOUSE_KEY (or GATEHOUSE_ADMIN_KEY)',
    )
  return { url: url.replace(/\/+$/, ''), key }
}

/** Calls the admin API; a non-2xx answer becomes one clear error line. */
export async function call(
  t: { url: string; key: string },
  method: string,
  path: string,
  body?: string,
  contentType = 'application/json',
): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(t.url + path, {
      method,
      headers: {
        authorization: `Bearer ${t.key}`,
        ...(body !== undefined ? { 'content-type': contentType } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    })
  } catch (err) {
    throw new GatewayError(
      'unavailable',
      `cannot reach ${t.url} (${(err as Error).message}); is the gateway running? pass --url`,
    )
  }
  const text = await res.text()
  const json: unknown = text ? safeJson(text) : undefined
  if (!res.ok) {
    // One line: the gateway's message already names every problem (manifests list each by path).
    const e = (json as { error?: { message?: string } } | undefined)?.error
    throw new GatewayError(
      'bad_request',
      `${method} ${path} failed (${res.status}): ${e?.message ?? text.slice(0, 500)}`,
    )
  }
  return json
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
