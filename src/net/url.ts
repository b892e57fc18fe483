/**
 * A URL as it may appear in errors, logs and spans: origin and path only. Userinfo and the
 * query may hold credentials (tokens, signatures), so they are never echoed.
 */
export function safeUrl(url: string | URL): string {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}`
  } catch {
    return '(invalid URL)'
  }
}
