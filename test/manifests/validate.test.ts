import { relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createContext, systemContext } from '../../src/context.js'
import { parseManifestText } from '../../src/manifests/parse.js'
import { validateManifests } from '../../src/manifests/validate.js'
import type { ResourceRecord } from '../../src/store/types.js'

const op = systemContext('default')
const acmeAdmin = createContext({ tenant: 'acme', principal: { kind: 'service', id: 'k' }, roles: ['admin'] })

function problems(yaml: string, ctx = op, existing: ResourceRecord[] = []) {
  const { issues, resources } = validateManifests(ctx, parseManifestText(yaml, 'm.yaml', '/base'), existing)
  return { issues: issues.map((i) => `${i.document} ${i.path}: ${i.message}`), resources }
}

const CONNECTOR = `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: gh }
spec: { transport: http, url: "http://127.0.0.1:1/mcp" }
`

describe('manifest validation', () => {
  it('accepts every field of the supported kinds, with defaults filled in', () => {
    const { issues, resources } = problems(`
apiVersion: gatehouse/v1
kind: Tenant
metadata: { name: acme }
spec: { display_name: Acme }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: gh, tenant: acme, labels: { team: infra } }
spec:
  description: GitHub
  transport: http
  url: https://example.invalid/mcp
  prefix: github
  protocol: "2025-11-25"
  headers: { x-static: v, x-secret: { env: GH_HEADER } }
  tools: { allow: ["get_*"], deny: [delete_repo] }
  auth: { type: static, token: { sealed: "gh1.abcd.xyz" } }
  timeout_ms: 5000
  on_error: fail
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: local, tenant: acme }
spec:
  transport: stdio
  command: node
  args: [server.js]
  env: { TOKEN: { env: LOCAL_TOKEN }, MODE: plain }
  cwd: ./srv
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: dev, tenant: acme }
spec:
  description: dev tools
  connectors: [gh, { name: local, tools: { deny: [rm] } }]
  tools: { deny: [github__delete_*] }
`)
    expect(issues).toEqual([])
    expect(resources.map((r) => `${r.kind}/${r.tenant}/${r.name}`)).toEqual([
      'Tenant/acme/acme',
      'Connector/acme/gh',
      'Connector/acme/local',
      'Server/acme/dev',
    ])
    const local = resources[2]!.spec as { cwd: string; on_error: string }
    expect(local.cwd).toBe('/base/srv')
    expect(local.on_error).toBe('omit')
    expect((resources[1]!.spec as { auth: { header: string } }).auth.header).toBe('Authorization')
  })

  it('lists every problem of a batch by document and path', () => {
    const { issues } = problems(`
apiVersion: gatehouse/v2
kind: Connector
metadata: { name: a }
spec: { transport: http, url: x }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: "bad name!" }
spec: { transport: carrier-pigeon }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: c }
spec: { transport: stdio, command: "", extra: 1, prefix: "no spaces" }
`)
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^m\.yaml#1 apiVersion: apiVersion must be gatehouse\/v1/),
        expect.stringMatching(/^m\.yaml#2 metadata\.name: /),
        expect.stringMatching(/^m\.yaml#3 spec\.command: /),
        expect.stringMatching(/^m\.yaml#3 spec: .*extra/),
        expect.stringMatching(/^m\.yaml#3 spec\.prefix: /),
      ]),
    )
  })

  it('refuses literal secrets where a secret is required', () => {
    const { issues } = problems(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: gh }
spec: { transport: http, url: "http://x.invalid/mcp", auth: { type: static, token: "ghp_literal_token" } }
`)
    expect(issues.join('\n')).toMatch(/spec\.auth\.token: secrets are never literal/)
    expect(issues.join('\n')).not.toContain('ghp_literal_token')
  })

  it('says plainly what is not supported yet', () => {
    const later = problems(`
apiVersion: gatehouse/v1
kind: Bot
metadata: { name: p }
spec: {}
---
apiVersion: gatehouse/v1
kind: Gadget
metadata: { name: g }
spec: {}
`).issues.join('\n')
    expect(later).toMatch(/#1 kind: kind Bot is not supported yet/)
    expect(later).toMatch(/#2 kind: unknown kind Gadget/)
  })

  it('validates oauth2 and builtin connectors: every problem named by path, secrets only by reference', () => {
    const ok = problems(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: gh }
spec:
  transport: builtin
  builtin: github
  base_url: http://127.0.0.1:9/api
  auth: { type: oauth2, provider: github, client_id: Iv1.x, client_secret: { env: GH_SECRET }, scopes: [repo], tool_scopes: { create_issue: [repo] } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: tracker }
spec: { transport: http, url: "https://tracker.example/mcp", auth: { type: oauth2 } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: idp }
spec:
  transport: http
  url: "https://x.example/mcp"
  auth: { type: oauth2, issuer: "https://idp.example", client_id: c, token_endpoint_auth_method: none }
`)
    expect(ok.issues).toEqual([])
    const bad = problems(`
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: a }
spec: { transport: stdio, command: x, auth: { type: oauth2 } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: b }
spec: { transport: builtin, builtin: github }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: c }
spec: { transport: builtin, builtin: jira, auth: { type: oauth2 } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: d }
spec:
  transport: http
  url: "https://x.example/mcp"
  auth: { type: oauth2, authorization_endpoint: "https://a.example/auth", client_secret: "literal-secret", scopes: ["has space"], provider: gitlab }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: e }
spec:
  transport: http
  url: "https://x.example/mcp"
  auth: { type: oauth2, issuer: "https://i.example", authorization_endpoint: "https://a.example/a", token_endpoint: "https://a.example/t", client_id: c, token_endpoint_auth_method: client_secret_post }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: f }
spec:
  transport: http
  url: "https://x.example/mcp"
  auth: { type: oauth2, authorization_endpoint: "https://a.example/auth", client_secret: { env: X } }
`).issues.join('\n')
    expect(bad).toMatch(/#1 spec\.auth\.type: oauth2 applies to http and builtin connectors/)
    expect(bad).toMatch(/#2 spec\.auth: builtin connector github needs auth/)
    expect(bad).toMatch(/#3 spec\.builtin: /)
    expect(bad).toMatch(/#4 spec\.auth\.client_secret: secrets are never literal/)
    expect(bad).toMatch(/#4 spec\.auth\.scopes\[0\]: must be one OAuth scope token/)
    expect(bad).toMatch(/#4 spec\.auth\.provider: /)
    expect(bad).toMatch(
      /#6 spec\.auth\.token_endpoint: authorization_endpoint and token_endpoint go together/,
    )
    expect(bad).toMatch(/#6 spec\.auth\.client_secret: client_secret needs client_id/)
    expect(bad).toMatch(/#5 spec\.auth\.issuer: give either issuer \(discovery\) or the endpoints, not both/)
    expect(bad).toMatch(/#5 spec\.auth\.token_endpoint_auth_method: client_secret_post needs client_secret/)
    expect(bad).not.toContain('literal-secret')
  })

  it('validates agents: module path and type, llm and a2a fields, agents a server selects', () => {
    const flex = resolve('test/fixtures/agents/flex.mjs')
    const ok = problems(`apiVersion: gatehouse/v1
kind: Agent
metadata: { name: flex }
spec: { type: code, module: ${JSON.stringify(flex)} }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: rel }
spec: { type: code, module: ${relative('/base', flex)} }
`)
    expect(ok.issues).toEqual([])
    expect((ok.resources[1]!.spec as { module: string }).module).toBe(flex)
    const bad = problems(`apiVersion: gatehouse/v1
kind: Agent
metadata: { name: a }
spec: { type: code, module: /nowhere/agent.mjs }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: b }
spec: { type: code, module: ${JSON.stringify(resolve('package.json'))} }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: c }
spec: { type: llm, base_url: "ftp://x", model: m, api_key: "sk-literal", max_steps: 0 }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: d }
spec: { type: a2a }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: e }
spec: { type: python, module: x.py }
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: s }
spec: { agents: [ghost] }
---
apiVersion: gatehouse/v1
kind: Server
metadata: { name: empty }
spec: {}
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: x }
spec: { transport: http, url: "http://127.0.0.1:1/mcp", prefix: agents }
`).issues.join('\n')
    expect(bad).toMatch(/#1 spec\.module: module \/nowhere\/agent\.mjs does not exist/)
    expect(bad).toMatch(/#2 spec\.module: .*must be a \.js, \.mjs, \.cjs, \.ts or \.mts file/)
    expect(bad).toMatch(/#3 spec\.base_url: must be an http or https URL/)
    expect(bad).toMatch(/#3 spec\.api_key: secrets are never literal/)
    expect(bad).toMatch(/#3 spec\.max_steps/)
    expect(bad).not.toContain('sk-literal')
    expect(bad).toMatch(/#4 spec\.url/)
    expect(bad).toMatch(/#5 spec\.type/)
    expect(bad).toMatch(/#6 spec\.agents\[0\]: agent ghost does not exist/)
    expect(bad).toMatch(/#7 spec\.connectors: a server selects at least one connector or agent/)
    expect(bad).toMatch(/#8 spec\.prefix: prefix "agents" is reserved/)
  })

  it('checks references, duplicates and the tenant a key may write', () => {
    const dup = problems(CONNECTOR + '---\n' + CONNECTOR).issues
    expect(dup.join('\n')).toMatch(/#2 metadata\.name: duplicate of m\.yaml#1/)
    const missing = problems(`apiVersion: gatehouse/v1
kind: Server
metadata: { name: s }
spec: { connectors: [nope] }
`).issues
    expect(missing).toEqual(['m.yaml#1 spec.connectors[0]: connector nope does not exist in tenant default'])
    const existing: ResourceRecord[] = [
      { kind: 'Connector', tenant: 'default', name: 'nope', spec: {}, generation: 1, updatedAt: '' },
    ]
    expect(
      problems(
        `apiVersion: gatehouse/v1
kind: Server
metadata: { name: s }
spec: { connectors: [nope] }
`,
        op,
        existing,
      ).issues,
    ).toEqual([])
    const cross = problems(CONNECTOR.replace('name: gh', 'name: gh, tenant: default'), acmeAdmin).issues
    expect(cross.join('\n')).toMatch(/metadata\.tenant: this key may only apply to tenant acme/)
    const tenant = problems(
      `apiVersion: gatehouse/v1
kind: Tenant
metadata: { name: other }
`,
      acmeAdmin,
    ).issues
    expect(tenant.join('\n')).toMatch(/creating tenants needs an operator key/)
  })

  it('reports YAML syntax errors with the document origin', () => {
    expect(() => parseManifestText('kind: [unclosed', 'bad.yaml')).toThrow(/bad\.yaml: syntax/)
  })

  it('accepts JSON documents and arrays of documents', () => {
    const docs = parseManifestText(
      JSON.stringify([
        JSON.parse(JSON.stringify({ apiVersion: 'gatehouse/v1', kind: 'Tenant', metadata: { name: 't1' } })),
        { apiVersion: 'gatehouse/v1', kind: 'Tenant', metadata: { name: 't2' } },
      ]),
      'req',
    )
    expect(docs.map((d) => d.origin)).toEqual(['req#1', 'req#2'])
    expect(validateManifests(op, docs, []).issues).toEqual([])
  })

  it('validates Policy documents: rules, expressions, redaction, budgets, and who may write global ones', () => {
    const ok = problems(
      `apiVersion: gatehouse/v1
kind: Policy
metadata: { name: guard, tenant: acme }
spec:
  rules:
    - match: { connector: github, tool: create_deployment }
      when: 'args.env == "prod"'
      decision: approve
      approvers: { role: approver }
      timeout: 1h
    - { match: { tool: github__delete_repo }, decision: deny, reason: by hand only }
  redaction: { detectors: [email, secret] }
  budgets: [{ name: spend, per: user, cost_usd: 5 }]
  rate_limits: [{ name: rl, per: user, per_minute: 60 }]
`,
      acmeAdmin,
    )
    expect(ok.issues).toEqual([])
    expect(ok.resources[0]!.spec).toMatchObject({
      global: false,
      redaction: { mode: 'mask', apply_to: ['arguments', 'results'] },
      budgets: [{ window: 'day' }],
    })
    const bad = problems(
      `apiVersion: gatehouse/v1
kind: Policy
metadata: { name: guard, tenant: acme }
spec:
  global: true
  rules:
    - { match: { tenant: acme }, decision: allow }
    - { when: 'args.env = "prod"', decision: deny }
    - { decision: allow, timeout: 5 minutes }
  budgets: [{ name: b, per: team, tool_calls: 1 }]
  redaction: { national_ids: [{ name: x, pattern: "(" }] }
`,
      acmeAdmin,
    ).issues.join('\n')
    expect(bad).toMatch(/spec\.rules\[1\]\.when: invalid expression: unexpected character "=" at position 9/)
    expect(bad).toMatch(/spec\.rules\[2\]\.timeout: must be a duration like 90s, 30m, 1h or 2d/)
    expect(bad).toMatch(/spec\.budgets\[0\]\.per/)
    expect(bad).toMatch(/spec\.redaction\.national_ids\[0\]\.pattern: must be a valid regular expression/)
    const global = problems(
      `apiVersion: gatehouse/v1
kind: Policy
metadata: { name: g, tenant: acme }
spec: { global: true, rules: [{ match: { tenant: acme }, decision: deny }] }
`,
      acmeAdmin,
    ).issues.join('\n')
    expect(global).toMatch(/spec\.global: a global policy needs an operator key/)
    expect(
      problems(`apiVersion: gatehouse/v1
kind: Policy
metadata: { name: g }
spec: { global: true, rules: [{ match: { tenant: "*" }, decision: deny }] }
`).issues,
    ).toEqual([])
    const scoped = problems(
      `apiVersion: gatehouse/v1
kind: Policy
metadata: { name: t, tenant: acme }
spec: { rules: [{ match: { tenant: other }, decision: deny }] }
`,
      acmeAdmin,
    ).issues.join('\n')
    expect(scoped).toMatch(/spec\.rules\[0\]\.match\.tenant: match\.tenant applies to global policies only/)
  })

  it('validates schedules: cron, time zone, policies, defaults, and that the agent exists', () => {
    const flex = resolve('test/fixtures/agents/flex.mjs')
    const agent = `apiVersion: gatehouse/v1
kind: Agent
metadata: { name: flex, tenant: acme }
spec: { type: code, module: "${flex}" }
`
    const ok = problems(
      `${agent}---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: nightly, tenant: acme }
spec:
  cron: "0 30 2 * * *"
  timezone: Europe/Berlin
  agent: flex
  input: { mode: echo, text: hi }
  overlap: enqueue
  missed: run_once
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: minimal, tenant: acme }
spec: { cron: "@hourly", agent: flex }
`,
      acmeAdmin,
    )
    expect(ok.issues).toEqual([])
    expect(ok.resources.find((r) => r.name === 'minimal')!.spec).toEqual({
      cron: '@hourly',
      timezone: 'UTC',
      agent: 'flex',
      input: {},
      enabled: true,
      overlap: 'skip',
      missed: 'skip',
    })
    // The agent may also exist already in the store, but only in the schedule's own tenant.
    const existing: ResourceRecord[] = [
      { kind: 'Agent', tenant: 'acme', name: 'stored', spec: {}, generation: 1, updatedAt: '' },
      { kind: 'Agent', tenant: 'globex', name: 'theirs', spec: {}, generation: 1, updatedAt: '' },
    ]
    const bad = problems(
      `apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: a }
spec: { cron: "61 * * * *", agent: stored }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: b }
spec: { cron: "* * * * *", timezone: Mars/Olympus, agent: stored }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: c }
spec: { cron: "* * * * *", agent: theirs, overlap: allow, missed: all, extra: 1 }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: d }
spec: { cron: "0 0 30 2 *", agent: stored }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: e }
spec: { cron: "* * * * *", agent: theirs }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: f }
spec: { cron: "* * * * *", agent: stored, input: [1] }
`,
      acmeAdmin,
      existing,
    ).issues.join('\n')
    expect(bad).toMatch(/#1 spec\.cron: invalid cron expression: .*minute/)
    expect(bad).toMatch(/#2 spec\.timezone: unknown time zone Mars\/Olympus/)
    expect(bad).toMatch(/#3 spec\.overlap: /)
    expect(bad).toMatch(/#3 spec\.missed: /)
    expect(bad).toMatch(/#3 spec: Unrecognized key: "extra"/)
    expect(bad).toMatch(/#4 spec\.cron: the expression never fires/)
    expect(bad).toMatch(/spec\.agent: agent theirs does not exist in tenant acme/)
    expect(bad).toMatch(/#6 spec\.input: /)
    expect(bad).not.toMatch(/agent stored does not exist/)
  })

  it('refuses env references and stdio connectors to non-operators, by path; data fields may hold { env }', () => {
    const flex = resolve('test/fixtures/agents/flex.mjs')
    const yaml = `apiVersion: gatehouse/v1
kind: Connector
metadata: { name: up, tenant: acme }
spec:
  transport: http
  url: https://up.example/mcp
  headers: { x-plain: v, x-sealed: { sealed: "gh1.abcd.xyz" }, x-env: { env: GATEHOUSE_ADMIN_KEY } }
  auth: { type: static, token: { env: GATEHOUSE_MASTER_KEY } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: gh, tenant: acme }
spec:
  transport: http
  url: https://gh.example/mcp
  auth: { type: oauth2, provider: github, client_id: Iv1.x, client_secret: { env: GH_SECRET } }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: local, tenant: acme }
spec: { transport: stdio, command: cat, args: [admin.key], env: { TOKEN: { env: T }, S: { sealed: "gh1.abcd.xyz" } } }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: remote, tenant: acme }
spec: { type: a2a, url: "https://a2a.example", headers: { authorization: { env: A2A_TOKEN } } }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: model, tenant: acme }
spec: { type: llm, base_url: "https://llm.example/v1", model: m, api_key: { env: OPENAI_API_KEY } }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: flex, tenant: acme }
spec:
  type: code
  module: "${flex}"
  input: { type: object, properties: { target: { type: object, default: { env: prod } } } }
---
apiVersion: gatehouse/v1
kind: Schedule
metadata: { name: nightly, tenant: acme }
spec: { cron: "@daily", agent: flex, input: { env: prod } }
---
apiVersion: gatehouse/v1
kind: Policy
metadata: { name: p, tenant: acme }
spec: { rules: [{ match: { tool: deploy, args: { env: prod } }, decision: deny }] }
`
    const env = (kind: string) =>
      `env references need an operator key: ask an operator to seal the value (gatehouse seal) or apply this ${kind}`
    const { issues, resources } = problems(yaml, acmeAdmin)
    expect(issues).toEqual([
      `m.yaml#1 spec.auth.token: ${env('connector')}`,
      `m.yaml#1 spec.headers.x-env: ${env('connector')}`,
      `m.yaml#2 spec.auth.client_secret: ${env('connector')}`,
      'm.yaml#3 spec.transport: stdio connectors run a command on the gateway host and need an operator key',
      `m.yaml#3 spec.env.TOKEN: ${env('connector')}`,
      `m.yaml#4 spec.headers.authorization: ${env('agent')}`,
      `m.yaml#5 spec.api_key: ${env('agent')}`,
    ])
    // the apply is refused whole (applyManifests throws on any issue); operators keep both
    expect(resources).toHaveLength(8)
    expect(problems(yaml, op).issues).toEqual([])
  })
})
