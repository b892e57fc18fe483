import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { GatewayError } from '../errors.js'

export interface OriginGuardOptions {
  /** The host the gateway listens on; DNS-rebinding checks apply when it is a loopback address. */
  listenHost: string
  allowedOrigins: readonly string[]
  allowedHosts: readonly string[]
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (LOOPBACK_NAMES.has(h)) return true
  return isIP(h) === 4 && h.startsWith('127.')
}

function isLoopbackOrigin(origin: string): boolean {
  try {
    return isLoopbackHost(new URL(origin).hostname.replace(/^\[|\]$/g, ''))
  } catch {
    return false
  }
}

function hostname(hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(0, hostHeader.indexOf(']') + 1)
  const i = hostHeader.lastIndexOf(':')
  return i === -1 ? hostHeader : hostHeader.slice(0, i)
}

/**
 * DNS-rebinding defence (MCP transport spec): a browser page on another site must not reach a
 * gateway on loopback. Origin, when present, must be a loopback origin or explicitly allowed.
 * When listening on loopback, Host must be a loopback name or explicitly allowed.
 */
export function createOriginGuard({ listenHost, allowedOrigins, allowedHosts }: OriginGuardOptions) {
  const origins = new Set(allowedOrigins.map((o) => o.toLowerCase()))
  const hosts = new Set(allowedHosts.map((h) => h.toLowerCase()))
  const checkHost = isLoopbackHost(listenHost) || listenHost === 'localhost'
  let accepted: string | undefined
  return (req: IncomingMessage): void => {
    const origin = req.headers.origin
    if (origin !== undefined) {
      const ok = origin !== 'null' && (origins.has(origin.toLowerCase()) || isLoopbackOrigin(origin))
      if (!ok)
        throw new GatewayError('forbidden', `Origin ${origin} is not allowed (add it to allowedOrigins)`)
    }
    if (checkHost) {
      const host = req.headers.host
      // Clients send the same Host on every request: the last one accepted passes at once.
      if (host === accepted) return
      if (!host) throw new GatewayError('bad_request', 'missing Host header')
      const name = hostname(host).toLowerCase()
      if (!isLoopbackHost(name) && !hosts.has(name) && !hosts.has(host.toLowerCase())) {
        throw new GatewayError('forbidden', `Host ${host} is not allowed (add it to allowedHosts)`)
      }
      accepted = host
    }
  }
}
