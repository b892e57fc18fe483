import { pathToFileURL } from 'node:url'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { z } from 'zod'
import { isAgentDefinition, type AgentDefinition } from '../agents/define.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../log.js'
import type { A2aAgentSpec, AgentSpec, LlmAgentSpec } from '../manifests/schema.js'
import type { ResourceRecord } from '../store/types.js'
import type { SecretResolver } from '../vault/secrets.js'

/** Builds `llm` and `a2a` agents from their manifests (kept injectable so the catalog stays small). */
export interface AgentBuilders {
  llm(name: string, spec: LlmAgentSpec, apiKey: string | undefined): AgentDefinition
  a2a(name: string, spec: A2aAgentSpec, headers: Record<string, string>): AgentDefinition
}

export type JsonSchema = Record<string, unknown>

/** The default input of an agent that declares none: `{ text }`. */
export const DEFAULT_INPUT_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { text: { type: 'string', description: 'What to ask the agent' } },
}

/** An applied Agent resource, with its definition loaded on first use. */
export interface LoadedAgent {
  tenant: string
  name: string
  generation: number
  spec: AgentSpec
  /** The definition (code modules are imported once per generation). */
  definition(): Promise<AgentDefinition>
  /** Description and JSON Schema of the input (the manifest's, else the module's, else `{text}`). */
  describe(): Promise<{ description?: string; inputSchema: JsonSchema }>
  /** Problems with an input, or undefined when it is valid. */
  validate(input: unknown): Promise<string[] | undefined>
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv
const ajv = addFormats(new Ajv({ allErrors: true, strict: false }))

const isZod = (v: unknown): v is z.ZodType =>
  typeof v === 'object' && v !== null && typeof (v as { safeParse?: unknown }).safeParse === 'function'

/** Imports a code agent's module: `.js`/`.mjs`/`.cjs` natively, `.ts`/`.mts` through tsx. */
async function importModule(path: string, generation: number): Promise<unknown> {
  if (/\.m?ts$/.test(path)) {
    const { tsImport } = await import('tsx/esm/api')
    return tsImport(`${pathToFileURL(path).href}?v=${generation}`, import.meta.url)
  }
  return import(`${pathToFileURL(path).href}?v=${generation}`)
}

function definitionFrom(mod: unknown, path: string): AgentDefinition {
  // A CommonJS-compiled module (or tsx interop) can wrap the default export once more.
  const m = mod as { default?: unknown }
  const candidates = [m?.default, (m?.default as { default?: unknown } | undefined)?.default]
  for (const c of candidates) if (isAgentDefinition(c)) return c
  for (const c of candidates)
    if (c && typeof (c as AgentDefinition).run === 'function') return c as AgentDefinition
  throw new GatewayError(
    'bad_request',
    `agent module ${path} has no agent as its default export; export default defineAgent({ name, run })`,
  )
}

class CatalogEntry implements LoadedAgent {
  private def?: Promise<AgentDefinition>
  private validator?: Promise<{ zod?: z.ZodType; ajv?: ValidateFunction }>

  constructor(
    readonly tenant: string,
    readonly name: string,
    readonly generation: number,
    readonly spec: AgentSpec,
    private readonly build: (e: CatalogEntry) => Promise<AgentDefinition>,
  ) {}

  definition(): Promise<AgentDefinition> {
    const p = (this.def ??= this.build(this))
    // A failed import is retried on the next run (the file may be fixed in place).
    p.catch(() => {
      if (this.def === p) this.def = undefined
    })
    return p
  }

  async describe(): Promise<{ description?: string; inputSchema: JsonSchema }> {
    let description = this.spec.description
    let schema: JsonSchema | undefined = this.spec.input
    if (this.spec.type === 'code' && (!description || !schema)) {
      const def = await this.definition()
      description ??= def.description
      if (!schema && def.input !== undefined)
        schema = isZod(def.input) ? (z.toJSONSchema(def.input) as JsonSchema) : (def.input as JsonSchema)
    }
    return { ...(description ? { description } : {}), inputSchema: schema ?? DEFAULT_INPUT_SCHEMA }
  }

  async validate(input: unknown): Promise<string[] | undefined> {
    const v = await (this.validator ??= (async () => {
      if (this.spec.type === 'code' && !this.spec.input) {
        const def = await this.definition()
        if (isZod(def.input)) return { zod: def.input }
      }
      const { inputSchema } = await this.describe()
      return { ajv: ajv.compile(inputSchema) }
    })())
    if (v.zod) {
      const r = v.zod.safeParse(input)
      return r.success
        ? undefined
        : r.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`)
    }
    if (v.ajv && !v.ajv(input))
      return (v.ajv.errors ?? []).map((e) => `${e.instancePath || '(input)'} ${e.message ?? 'is invalid'}`)
    return undefined
  }
}

/** The runtime view of Agent resources per tenant. Rebuilt on every apply; unchanged agents keep their loaded module. */
export class AgentCatalog {
  private entries = new Map<string, CatalogEntry>()

  constructor(
    private readonly deps: { secrets: SecretResolver; logger: Logger; builders?: Partial<AgentBuilders> },
  ) {}

  load(resources: readonly ResourceRecord[]): void {
    const next = new Map<string, CatalogEntry>()
    for (const r of resources) {
      if (r.kind !== 'Agent') continue
      const k = `${r.tenant}/${r.name}`
      const prev = this.entries.get(k)
      next.set(
        k,
        prev && prev.generation === r.generation
          ? prev
          : new CatalogEntry(r.tenant, r.name, r.generation, r.spec as AgentSpec, (e) => this.build(e)),
      )
    }
    this.entries = next
  }

  get(tenant: string, name: string): LoadedAgent | undefined {
    return this.entries.get(`${tenant}/${name}`)
  }

  list(tenant: string): LoadedAgent[] {
    return [...this.entries.values()].filter((e) => e.tenant === tenant)
  }

  private async build(e: CatalogEntry): Promise<AgentDefinition> {
    const spec = e.spec
    const where = `agent ${e.name}`
    if (spec.type === 'code')
      return definitionFrom(await importModule(spec.module, e.generation), spec.module)
    const builders = this.deps.builders ?? {}
    if (spec.type === 'llm') {
      if (!builders.llm)
        throw new GatewayError('not_supported', `${where}: llm agents are not available in this build`)
      const key = spec.api_key ? this.deps.secrets.resolve(spec.api_key, `${where}.api_key`) : undefined
      return builders.llm(e.name, spec, key)
    }
    if (!builders.a2a)
      throw new GatewayError('not_supported', `${where}: a2a agents are not available in this build`)
    return builders.a2a(e.name, spec, this.deps.secrets.resolveMap(spec.headers, `${where}.headers`))
  }
}
