/**
 * Agent cards: one per agent of a tenant, built from its manifest (name, description, input
 * schema) and from what this gateway really serves (JSON-RPC and HTTP+JSON at `/a2a/{agent}`,
 * A2A 1.0 and 0.3 over JSON-RPC, streaming, push notifications, bearer authentication).
 */
import { AgentCard } from '@a2a-js/sdk'
import { A2A_LEGACY_PROTOCOL_VERSION } from '@a2a-js/sdk/compat/v0_3'
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server'
import { ServerCallContext, type A2ARequestHandler } from '@a2a-js/sdk/server'
import type { JsonSchema, LoadedAgent } from '../runs/agents.js'

export const CARD_PATH = '/.well-known/agent-card.json'
/** The extension of the extended card that carries the agent's exact input JSON Schema. */
export const INPUT_SCHEMA_EXTENSION = 'urn:gatehouse:a2a:input-schema:v1'
const SECURITY_SCHEME = 'gatehouse'

export type CardJson = Record<string, unknown>

/**
 * The security schemes of every card, from the gateway's real inbound authentication: an HTTP
 * bearer token on every A2A call, either a Gatehouse API key (`gk_…`) or, where OIDC issuers are
 * configured (and advertised), an access token from one of them (one OpenID Connect scheme per
 * issuer; any one of the requirements suffices). The one place to extend when authentication
 * changes.
 */
export function securityOf(opts: { oidcIssuers?: readonly string[] } = {}): {
  securitySchemes: Record<string, unknown>
  securityRequirements: unknown[]
} {
  const issuers = opts.oidcIssuers ?? []
  const securitySchemes: Record<string, unknown> = {
    [SECURITY_SCHEME]: {
      httpAuthSecurityScheme: {
        scheme: 'Bearer',
        bearerFormat: issuers.length ? 'API key or JWT' : 'API key',
        description:
          'Authorization: Bearer <token>: a Gatehouse API key (gk_…)' +
          (issuers.length ? ' or an OIDC access token' : '') +
          ". The credentials' tenant selects the agent.",
      },
    },
  }
  const securityRequirements: unknown[] = [{ schemes: { [SECURITY_SCHEME]: { list: [] } } }]
  issuers.forEach((issuer, i) => {
    const name = `oidc${i ? i + 1 : ''}`
    securitySchemes[name] = {
      openIdConnectSecurityScheme: {
        openIdConnectUrl: `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`,
        description: `An access token from ${issuer} whose audience is this gateway, sent as Authorization: Bearer`,
      },
    }
    securityRequirements.push({ schemes: { [name]: { list: [] } } })
  })
  return { securitySchemes, securityRequirements }
}

const TEXT_ONLY = 'Input: plain text (a text part).'

/** A short, human description of an input schema for the skill: its fields, or plain text. */
export function describeInput(schema: JsonSchema): string {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown; enum?: unknown }>
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : [])
  const names = Object.keys(props)
  if (names.length === 1 && names[0] === 'text' && !required.size) return TEXT_ONLY
  if (!names.length) return 'Input: a data part holding a JSON object; a text part fills `text`.'
  const fields = names.map((n) => {
    const p = props[n] ?? {}
    const type = Array.isArray(p.enum)
      ? p.enum.map((v) => JSON.stringify(v)).join(' | ')
      : typeof p.type === 'string'
        ? p.type
        : 'any'
    return `${n} (${type}${required.has(n) ? ', required' : ''})`
  })
  return `Input: a data part holding a JSON object with ${fields.join(', ')}; a text part fills \`text\`.`
}

export interface CardOptions {
  /** `http(s)://host[:port]` the caller reached this gateway at. */
  baseUrl: string
  /** Adds the exact input schema (the authenticated extended card). */
  extended?: boolean
  oidcIssuers?: readonly string[]
}

/** The A2A 1.0 card of one agent. */
export async function cardOf(agent: LoadedAgent, opts: CardOptions): Promise<CardJson> {
  const described = await agent
    .describe()
    .catch(() => ({ inputSchema: { type: 'object' } as JsonSchema, description: undefined }))
  const url = `${opts.baseUrl}/a2a/${encodeURIComponent(agent.name)}`
  const textOnly = describeInput(described.inputSchema) === TEXT_ONLY
  const description = described.description ?? `The ${agent.spec.type} agent ${agent.name}`
  return {
    name: agent.name,
    description,
    version: `${agent.generation}.0.0`,
    supportedInterfaces: [
      { url, protocolBinding: 'JSONRPC', protocolVersion: '1.0' },
      { url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' },
      { url, protocolBinding: 'JSONRPC', protocolVersion: A2A_LEGACY_PROTOCOL_VERSION },
    ],
    provider: { organization: 'Gatehouse', url: opts.baseUrl },
    capabilities: {
      streaming: true,
      pushNotifications: true,
      extendedAgentCard: true,
      ...(opts.extended
        ? {
            extensions: [
              {
                uri: INPUT_SCHEMA_EXTENSION,
                description: "The JSON Schema a data part's object (the run input) must match",
                required: false,
                params: { inputSchema: described.inputSchema, agentType: agent.spec.type },
              },
            ],
          }
        : {}),
    },
    ...securityOf(opts.oidcIssuers ? { oidcIssuers: opts.oidcIssuers } : {}),
    defaultInputModes: textOnly ? ['text/plain', 'application/json'] : ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json', 'text/plain'],
    skills: [
      {
        id: agent.name,
        name: agent.name,
        description: `${description}. ${describeInput(described.inputSchema)}`,
        tags: ['gatehouse', agent.spec.type],
        ...(opts.extended
          ? { examples: [textOnly ? 'Hello' : JSON.stringify(exampleOf(described.inputSchema))] }
          : {}),
      },
    ],
  }
}

/** A skeleton input from a schema (required fields with placeholder values), for the extended card. */
function exampleOf(schema: JsonSchema): Record<string, unknown> {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown; enum?: unknown[] }>
  const required = Array.isArray(schema.required) ? (schema.required as string[]) : Object.keys(props)
  const out: Record<string, unknown> = {}
  for (const n of required) {
    const p = props[n] ?? {}
    out[n] = Array.isArray(p.enum)
      ? p.enum[0]
      : p.type === 'number' || p.type === 'integer'
        ? 1
        : p.type === 'boolean'
          ? true
          : p.type === 'object'
            ? {}
            : p.type === 'array'
              ? []
              : '…'
  }
  return out
}

/**
 * The same card in A2A 0.3 shape (url, preferredTransport, additionalInterfaces, `type`-tagged
 * security schemes), for clients that ask without `A2A-Version: 1.0`. The SDK's own converter is
 * only reachable through its v0.3 JSON-RPC handler, so that handler converts it here; the 1.0
 * interfaces stay embedded (`supportedInterfaces`) as the SDK's own card handler does.
 */
export async function legacyCardOf(card: CardJson): Promise<CardJson> {
  const core = AgentCard.fromJSON(card)
  const source = {
    getAgentCard: async () => core,
    getAuthenticatedExtendedAgentCard: async () => core,
  } as unknown as A2ARequestHandler
  const res = (await new LegacyJsonRpcTransportHandler(source).handle(
    { jsonrpc: '2.0', id: 0, method: 'agent/getAuthenticatedExtendedCard' },
    new ServerCallContext(),
  )) as { result?: CardJson; error?: { message: string } }
  if (!res.result) throw new Error(`cannot convert the agent card: ${res.error?.message ?? 'no result'}`)
  return { ...res.result, supportedInterfaces: card.supportedInterfaces }
}
