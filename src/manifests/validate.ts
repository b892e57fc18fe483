import { existsSync, statSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import type { CallContext } from '../context.js'
import type { ResourceInput, ResourceKind, ResourceRecord } from '../store/types.js'
import { resolveFrom, type ManifestIssue, type ManifestSource } from './parse.js'
import {
  EnvelopeSchema,
  LATER_KINDS,
  SPEC_SCHEMAS,
  SUPPORTED_KINDS,
  AGENT_PREFIX,
  SecretRefSchema,
  type AgentSpec,
  type ConnectorSpec,
  type PolicySpec,
  type ScheduleSpec,
  type ServerSpec,
} from './schema.js'

type IssuePath = readonly PropertyKey[]
const joinPath = (p: IssuePath): string =>
  p
    .map((s) => (typeof s === 'number' ? `[${s}]` : String(s)))
    .join('.')
    .replace(/\.\[/g, '[')

export interface ValidationResult {
  resources: ResourceInput[]
  issues: ManifestIssue[]
}

/**
 * Validates a whole batch: each document's shape, the caller's right to write its tenant,
 * duplicates within the batch, and references between documents (a Server's connectors must
 * exist in the batch or the store). Nothing is written here.
 */
export function validateManifests(
  ctx: CallContext,
  sources: ManifestSource[],
  existing: ResourceRecord[],
): ValidationResult {
  const issues: ManifestIssue[] = []
  const resources: ResourceInput[] = []
  const seen = new Map<string, string>()
  const add = (document: string, path: IssuePath, message: string) =>
    issues.push({ document, path: joinPath(path), message })

  for (const src of sources) {
    const env = EnvelopeSchema.safeParse(src.doc)
    if (!env.success) {
      for (const i of env.error.issues) add(src.origin, i.path, i.message)
      continue
    }
    const { kind, metadata } = env.data
    if ((LATER_KINDS as readonly string[]).includes(kind)) {
      add(src.origin, ['kind'], `kind ${kind} is not supported yet by this gateway version`)
      continue
    }
    if (!(SUPPORTED_KINDS as readonly string[]).includes(kind)) {
      add(
        src.origin,
        ['kind'],
        `unknown kind ${kind}; expected one of ${[...SUPPORTED_KINDS, ...LATER_KINDS].join(', ')}`,
      )
      continue
    }
    const tenant = kind === 'Tenant' ? metadata.name : (metadata.tenant ?? ctx.tenant)
    if (kind === 'Tenant' && metadata.tenant !== undefined)
      add(src.origin, ['metadata', 'tenant'], 'a Tenant has no tenant')
    if (kind === 'Tenant' && !ctx.operator)
      add(src.origin, ['kind'], 'creating tenants needs an operator key')
    if (tenant !== ctx.tenant && !ctx.operator) {
      add(src.origin, ['metadata', 'tenant'], `this key may only apply to tenant ${ctx.tenant}`)
    }
    const schema = SPEC_SCHEMAS[kind as keyof typeof SPEC_SCHEMAS]
    const parsed = schema.safeParse(src.doc && (src.doc as { spec?: unknown }).spec)
    if (!parsed.success) {
      for (const i of parsed.error.issues) add(src.origin, ['spec', ...i.path], i.message)
      continue
    }
    const key = `${kind}/${tenant}/${metadata.name}`
    const dup = seen.get(key)
    if (dup) add(src.origin, ['metadata', 'name'], `duplicate of ${dup}`)
    seen.set(key, src.origin)
    let spec: unknown = parsed.data
    if (kind === 'Connector') spec = withResolvedPaths(parsed.data as ConnectorSpec, src.baseDir)
    if (kind === 'Agent') {
      const agent = parsed.data as AgentSpec
      if (agent.type === 'code') {
        const module = resolveFrom(src.baseDir, agent.module)
        const problem = checkModulePath(module)
        if (problem) add(src.origin, ['spec', 'module'], problem)
        spec = { ...agent, module }
      }
    }
    if (kind === 'Policy')
      checkPolicy(parsed.data as PolicySpec, ctx, (path, message) => add(src.origin, path, message))
    if (!ctx.operator)
      checkHostReach(kind as ResourceKind, parsed.data, (path, message) => add(src.origin, path, message))
    resources.push({ kind: kind as ResourceKind, tenant, name: metadata.name, spec })
  }
  checkReferences(sources, resources, existing, issues)
  checkToolNameLength(sources, resources, issues)
  return { resources, issues }
}

/** Global policies govern every tenant: only operators may write them; `match.tenant` needs one. */
function checkPolicy(
  spec: PolicySpec,
  ctx: CallContext,
  add: (path: IssuePath, message: string) => void,
): void {
  if (spec.global && !ctx.operator) add(['spec', 'global'], 'a global policy needs an operator key')
  spec.rules.forEach((r, i) => {
    if (r.match.tenant !== undefined && !spec.global)
      add(
        ['spec', 'rules', i, 'match', 'tenant'],
        'match.tenant applies to global policies only (spec.global: true); a policy governs its own tenant',
      )
  })
}

/**
 * Free-form JSON a spec carries as data (agent and schedule inputs, policy argument matches): a
 * `{ env: … }` there is a value, not a secret reference. `*` matches any key or index.
 */
const DATA_FIELDS: Partial<Record<ResourceKind, readonly (readonly string[])[]>> = {
  Agent: [['input']],
  Schedule: [['input']],
  Policy: [['rules', '*', 'match', 'args']],
}

/**
 * What reaches past the tenant into the gateway's host needs an operator key: `{ env: NAME }`
 * resolves from the gateway's own environment (which holds the operator's keys), and a stdio
 * connector runs a command as the gateway. Tenant admins use sealed values and http upstreams.
 * (Code agents, which load a module already on the host, are not limited yet: docs/security.md.)
 */
function checkHostReach(
  kind: ResourceKind,
  spec: unknown,
  add: (path: IssuePath, message: string) => void,
): void {
  if (kind === 'Connector' && (spec as ConnectorSpec).transport === 'stdio')
    add(['spec', 'transport'], 'stdio connectors run a command on the gateway host and need an operator key')
  for (const path of envRefPaths(spec, DATA_FIELDS[kind] ?? []))
    add(
      ['spec', ...path],
      `env references need an operator key: ask an operator to seal the value (gatehouse seal) or apply this ${kind.toLowerCase()}`,
    )
}

/**
 * Paths of every `{ env: NAME }` secret reference in a parsed spec, wherever the schema declares a
 * secret field (headers, env, auth tokens, client secrets, api keys), outside the data fields.
 */
function envRefPaths(
  value: unknown,
  skip: readonly (readonly string[])[],
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (skip.some((s) => s.length === path.length && s.every((k, i) => k === '*' || k === String(path[i]))))
    return out
  if (Array.isArray(value)) {
    value.forEach((v, i) => envRefPaths(v, skip, [...path, i], out))
  } else if (value !== null && typeof value === 'object') {
    const ref = SecretRefSchema.safeParse(value)
    if (ref.success) {
      if ('env' in ref.data) out.push(path)
      return out
    }
    for (const [k, v] of Object.entries(value)) envRefPaths(v, skip, [...path, k], out)
  }
  return out
}

/** A code agent's module must be an existing .js/.mjs/.cjs/.ts/.mts file at an absolute path. */
function checkModulePath(module: string): string | undefined {
  if (!isAbsolute(module))
    return `module ${module} must be an absolute path when applied through the API (gatehouse apply -f resolves it against the manifest file)`
  if (!/\.(m?js|cjs|m?ts)$/.test(module))
    return `module ${module} must be a .js, .mjs, .cjs, .ts or .mts file`
  if (!existsSync(module) || !statSync(module).isFile()) return `module ${module} does not exist`
  return undefined
}

/** A stdio connector's cwd (default: the manifest's directory) resolves against the manifest file. */
function withResolvedPaths(spec: ConnectorSpec, baseDir: string | undefined): ConnectorSpec {
  if (spec.transport !== 'stdio' || !baseDir) return spec
  return { ...spec, cwd: resolveFrom(baseDir, spec.cwd ?? '.') }
}

function checkReferences(
  sources: ManifestSource[],
  resources: ResourceInput[],
  existing: ResourceRecord[],
  issues: ManifestIssue[],
): void {
  const connectors = new Set<string>()
  const agents = new Set<string>()
  for (const r of [...existing, ...resources]) {
    if (r.kind === 'Connector') connectors.add(`${r.tenant}/${r.name}`)
    if (r.kind === 'Agent') agents.add(`${r.tenant}/${r.name}`)
  }
  resources.forEach((r) => {
    if (r.kind === 'Schedule') {
      const agent = (r.spec as ScheduleSpec).agent
      if (!agents.has(`${r.tenant}/${agent}`))
        issues.push({
          document: originOf(sources, resources, r),
          path: 'spec.agent',
          message: `agent ${agent} does not exist in tenant ${r.tenant}`,
        })
      return
    }
    if (r.kind !== 'Server') return
    const origin = originOf(sources, resources, r)
    ;((r.spec as ServerSpec).agents ?? []).forEach((a, i) => {
      if (!agents.has(`${r.tenant}/${a}`))
        issues.push({
          document: origin,
          path: `spec.agents[${i}]`,
          message: `agent ${a} does not exist in tenant ${r.tenant}`,
        })
    })
    ;(r.spec as ServerSpec).connectors.forEach((c, i) => {
      const name = typeof c === 'string' ? c : c.name
      if (!connectors.has(`${r.tenant}/${name}`)) {
        issues.push({
          document: origin,
          path: `spec.connectors[${i}]`,
          message: `connector ${name} does not exist in tenant ${r.tenant}`,
        })
      }
    })
  })
}

/** `{prefix}__{tool}` must fit in 64 characters; the prefix alone may not use it all. */
function checkToolNameLength(
  sources: ManifestSource[],
  resources: ResourceInput[],
  issues: ManifestIssue[],
): void {
  for (const r of resources) {
    if (r.kind !== 'Connector') continue
    const prefix = (r.spec as ConnectorSpec).prefix ?? r.name
    if (prefix === AGENT_PREFIX) {
      issues.push({
        document: originOf(sources, resources, r),
        path: 'spec.prefix',
        message: `prefix "${AGENT_PREFIX}" is reserved: agents appear as ${AGENT_PREFIX}__{name}; set another prefix`,
      })
    }
    if (prefix.length > 40) {
      issues.push({
        document: originOf(sources, resources, r),
        path: 'spec.prefix',
        message: `prefix "${prefix}" is too long: exposed names {prefix}__{tool} must stay within 64 characters`,
      })
    }
  }
}

function originOf(sources: ManifestSource[], resources: ResourceInput[], r: ResourceInput): string {
  // Resources keep the order of the valid sources; find the source by name/kind.
  const src = sources.find((s) => {
    const d = s.doc as { kind?: string; metadata?: { name?: string } }
    return d?.kind === r.kind && d?.metadata?.name === r.name
  })
  return src?.origin ?? `${r.kind}/${r.name}`
}
