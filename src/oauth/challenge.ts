export interface BearerChallenge {
  /** RFC 9728 protected resource metadata URL. */
  resourceMetadata?: string
  /** Scopes the resource asks for (space-separated `scope`). */
  scopes?: string[]
  /** RFC 6750 error, e.g. invalid_token or insufficient_scope. */
  error?: string
  errorDescription?: string
}

/**
 * Parses the Bearer challenge of a WWW-Authenticate header (RFC 6750 / RFC 9728): auth-params
 * as token or quoted-string values, other schemes in the same header skipped.
 * Undefined when there is no Bearer challenge.
 */
export function parseBearerChallenge(header: string | null | undefined): BearerChallenge | undefined {
  if (!header) return undefined
  const params = bearerParams(header)
  if (!params) return undefined
  const out: BearerChallenge = {}
  if (params.resource_metadata) out.resourceMetadata = params.resource_metadata
  const scopes = params.scope?.split(/\s+/).filter(Boolean)
  if (scopes?.length) out.scopes = scopes
  if (params.error) out.error = params.error
  if (params.error_description) out.errorDescription = params.error_description
  return out
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/

/** The auth-params of the first Bearer challenge, or undefined when none. */
function bearerParams(header: string): Record<string, string> | undefined {
  let rest = header
  let found: Record<string, string> | undefined
  while (rest.length) {
    rest = rest.replace(/^[\s,]+/, '')
    const scheme = TOKEN.exec(rest)?.[0]
    if (!scheme) break
    rest = rest.slice(scheme.length)
    const params: Record<string, string> = {}
    // auth-params until the next scheme (a token not followed by '=')
    for (;;) {
      const m = /^[\s,]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*/.exec(rest)
      if (!m) break
      rest = rest.slice(m[0].length)
      const [value, after] = readValue(rest)
      params[m[1]!.toLowerCase()] = value
      rest = after
    }
    // token68 form (Bearer abc==) carries no params we use
    if (!Object.keys(params).length) rest = rest.replace(/^\s*[A-Za-z0-9\-._~+/]+=*/, '')
    if (scheme.toLowerCase() === 'bearer' && !found) found = params
  }
  return found
}

function readValue(s: string): [string, string] {
  if (s.startsWith('"')) {
    let out = ''
    for (let i = 1; i < s.length; i++) {
      const c = s[i]!
      if (c === '\\' && i + 1 < s.length) out += s[++i]
      else if (c === '"') return [out, s.slice(i + 1)]
      else out += c
    }
    return [out, '']
  }
  const m = /^[^\s,]*/.exec(s)![0]
  return [m, s.slice(m.length)]
}
