import { GatewayError } from '../errors.js'
import type { MasterKey } from './master-key.js'
import { unseal } from './seal.js'

/** A secret field in a manifest: never a literal. */
export type SecretRef = { env: string } | { sealed: string }

export interface SecretResolverOptions {
  masterKeys: readonly MasterKey[]
  env?: NodeJS.ProcessEnv
}

/** Resolves secret references at the moment of use; plaintext is never stored or logged. */
export class SecretResolver {
  private readonly masterKeys: readonly MasterKey[]
  private readonly env: NodeJS.ProcessEnv

  constructor({ masterKeys, env = process.env }: SecretResolverOptions) {
    this.masterKeys = masterKeys
    this.env = env
  }

  resolve(ref: SecretRef, where: string): string {
    if ('env' in ref) {
      const v = this.env[ref.env]
      if (v === undefined || v === '') {
        throw new GatewayError('unavailable', `${where}: environment variable ${ref.env} is not set`)
      }
      return v
    }
    try {
      return unseal(this.masterKeys, ref.sealed)
    } catch (err) {
      throw new GatewayError(
        'unavailable',
        `${where}: ${err instanceof Error ? err.message : 'cannot unseal'}`,
      )
    }
  }

  /** Values of a string map where each value is a literal or a secret reference. */
  resolveMap(map: Record<string, string | SecretRef> | undefined, where: string): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [k, v] of Object.entries(map ?? {}))
      out[k] = typeof v === 'string' ? v : this.resolve(v, `${where}.${k}`)
    return out
  }
}
