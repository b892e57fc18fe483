import type { CallContext } from '../context.js'

/** Which class of route a path is, for the scope it needs (docs/auth.md "Scopes"). */
export type ScopeClass = 'mcp' | 'admin' | 'api'

export interface ResourceServerOptions {
  /** Configured public base URL (no trailing slash); absent: the listen URL, set once listening. */
  publicUrl?: string
  /** Scope each class of route needs; null: none. */
  scopes: Record<ScopeClass, string | null>
  /** `scopes_supported` of the MCP endpoints; default: the mcp scope. */
  scopesSupported?: readonly string[]
  /** Issuer URLs listed as `authorization_servers`. */
  authorizationServers: readonly string[]
  resourceName: string
  resourceDocumentation?: string
}

export const PRM_PATH = '/.well-known/oauth-protected-resource'

/** `/mcp` and `/mcp/{server}` are protected resources of their own (RFC 9728); everything else is the gateway's base resource. */
export function isMcpPath(pathname: string): boolean {
  return pathname === '/mcp' || (pathname.startsWith('/mcp/') && pathname.indexOf('/', 5) === -1)
}

/**
 * An auth-param value (RFC 9110 quoted-string) of printable ASCII: quotes, backslashes, control
 * and non-ASCII characters (which a header cannot carry) become spaces; at most 300 characters.
 */
function quoted(v: string): string {
  let out = ''
  for (let i = 0; i < v.length && i < 300; i++) {
    const c = v.charCodeAt(i)
    out += c === 0x22 || c === 0x5c || c < 0x20 || c > 0x7e ? ' ' : v[i]
  }
  return `"${out}"`
}

/**
 * This gateway as an OAuth 2.1 protected resource: its resource identifiers, the RFC 9728
 * metadata of each MCP endpoint, the scope each route needs, the audiences a token may carry,
 * and the `WWW-Authenticate` challenges of 401 and 403 answers.
 */
export class ResourceServer {
  private base: string
  /** Gateway-wide audiences, built once (the hot path allocates nothing for them). */
  private audiences: readonly string[] = []

  constructor(private readonly opts: ResourceServerOptions) {
    this.base = opts.publicUrl ?? 'http://127.0.0.1'
    this.setBase(this.base)
  }

  /** Called once listening: the listen URL becomes the base unless publicUrl was configured. */
  setListenUrl(url: string): void {
    if (!this.opts.publicUrl) this.setBase(url.replace(/\/+$/, ''))
  }

  private setBase(base: string): void {
    this.base = base
    this.audiences = Object.freeze([base, base + '/', base + '/mcp'])
  }

  get publicUrl(): string {
    return this.base
  }

  /** The resource identifier a request path belongs to. */
  resourceFor(pathname: string): string {
    return isMcpPath(pathname) ? this.base + pathname : this.base
  }

  /** Where the metadata of that resource is served. */
  metadataUrlFor(pathname: string): string {
    return this.base + PRM_PATH + (isMcpPath(pathname) ? pathname : '')
  }

  scopeClass(pathname: string): ScopeClass {
    if (isMcpPath(pathname)) return 'mcp'
    if (pathname.startsWith('/v1/admin/')) return 'admin'
    return 'api'
  }

  /** The scope a token must carry for this path, if any. */
  scopeFor(pathname: string): string | undefined {
    return this.opts.scopes[this.scopeClass(pathname)] ?? undefined
  }

  /**
   * Audiences accepted for a request to `pathname` (issuers without an `audience` override):
   * the gateway's base URL and its `/mcp` resource anywhere; `/mcp/{server}` only on that server.
   */
  audiencesFor(pathname: string): readonly string[] {
    if (pathname === '/mcp' || !isMcpPath(pathname)) return this.audiences
    return [...this.audiences, this.base + pathname]
  }

  /** Every scope this gateway gives meaning to. */
  allScopes(): string[] {
    const s = Object.values(this.opts.scopes).filter((x): x is string => !!x)
    return [...new Set([...s, ...(this.opts.scopesSupported ?? [])])]
  }

  /** RFC 9728 metadata for the resource at `resourcePath` ('' for the base, '/mcp', '/mcp/{server}'). */
  metadata(resourcePath: string): Record<string, unknown> {
    const mcp = resourcePath !== ''
    const scopes = mcp
      ? (this.opts.scopesSupported ?? (this.opts.scopes.mcp ? [this.opts.scopes.mcp] : []))
      : this.allScopes()
    return {
      resource: this.base + resourcePath,
      authorization_servers: [...this.opts.authorizationServers],
      scopes_supported: [...scopes],
      bearer_methods_supported: ['header'],
      resource_name: this.opts.resourceName,
      ...(this.opts.resourceDocumentation ? { resource_documentation: this.opts.resourceDocumentation } : {}),
    }
  }

  /**
   * The 401 challenge: where the metadata is and which scope the route needs; with `error`
   * (`invalid_token`) when a token was presented and refused (RFC 6750 §3).
   */
  unauthorizedChallenge(pathname: string, error?: { description: string }): string {
    const params = [
      ...(error ? [`error="invalid_token"`, `error_description=${quoted(error.description)}`] : []),
      `resource_metadata=${quoted(this.metadataUrlFor(pathname))}`,
    ]
    const scope = this.scopeFor(pathname)
    if (scope) params.push(`scope=${quoted(scope)}`)
    return `Bearer ${params.join(', ')}`
  }

  /** The full scope set a step-up authorization should ask for: what the token has plus what the route needs. */
  stepUpScopes(ctx: CallContext, required: string): string[] {
    return [...new Set([...ctx.scopes, required])]
  }

  /** The 403 challenge for a token without the route's scope (RFC 6750 §3.1, MCP scope step-up). */
  insufficientScopeChallenge(pathname: string, scopes: readonly string[]): string {
    return [
      `Bearer error="insufficient_scope"`,
      `scope=${quoted(scopes.join(' '))}`,
      `resource_metadata=${quoted(this.metadataUrlFor(pathname))}`,
      `error_description=${quoted('the token lacks a scope this request needs')}`,
    ].join(', ')
  }
}
