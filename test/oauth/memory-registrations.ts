import type { RegisteredClient, RegistrationCache } from '../../src/oauth/index.js'

/** An in-memory RegistrationCache (first writer wins) that counts its writes. */
export class MemoryRegistrations implements RegistrationCache {
  readonly entries = new Map<string, RegisteredClient>()
  puts = 0

  async get(issuer: string): Promise<RegisteredClient | undefined> {
    return this.entries.get(issuer)
  }

  async put(issuer: string, c: RegisteredClient): Promise<RegisteredClient> {
    this.puts++
    if (!this.entries.has(issuer)) this.entries.set(issuer, c)
    return this.entries.get(issuer)!
  }
}
