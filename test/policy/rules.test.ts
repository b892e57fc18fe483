import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { createContext, type CallContext, type Role } from '../../src/context.js'
import { PolicySpecSchema } from '../../src/manifests/schema.js'
import { compileExpression, ExpressionError, POLICY_VARIABLES } from '../../src/policy/expr.js'
import { compilePolicies, decide, listable, type CallFacts } from '../../src/policy/rules.js'

const run = (src: string, env: Record<string, unknown> = {}) =>
  compileExpression(src, POLICY_VARIABLES).fn({ args: null, ...env })

function ctx(id = 'k1', roles: Role[] = ['member'], kind: 'service' | 'user' = 'service'): CallContext {
  return createContext({ tenant: 'acme', principal: { kind, id }, roles })
}

function agentCtx(agent: string, user: string): CallContext {
  return createContext({
    tenant: 'acme',
    principal: { kind: 'agent', id: `agent:${agent}`, name: agent, onBehalfOf: { kind: 'user', id: user } },
    roles: ['member'],
  })
}

const facts = (
  c: CallContext,
  connector: string,
  tool: string,
  args?: Record<string, unknown>,
): CallFacts => ({
  ctx: c,
  connector,
  tool,
  exposed: `${connector}__${tool}`,
  ...(args ? { args } : {}),
})

function policy(yaml: string) {
  return compilePolicies([{ name: 'p', spec: PolicySpecSchema.parse(parseYaml(yaml)) }], 'k')
}

describe('policy expressions', () => {
  it('evaluates comparisons, logic, membership, paths and functions without coercion', () => {
    const env = {
      args: { env: 'prod', amount: 250, tags: ['a', 'b'], nested: { x: [1, { y: 'z' }] }, 'odd key': 1 },
      roles: ['member', 'approver'],
      principal: { id: 'k1', kind: 'service' },
    }
    const cases: [string, boolean][] = [
      ['args.env == "prod"', true],
      ["args.env == 'prod' && args.amount > 100", true],
      ['args.env == "prod" and args.amount >= 251', false],
      ['args.amount == "250"', false],
      ['args.amount < "300"', false],
      ['!(args.env == "staging")', true],
      ['not args.missing', true],
      ['args.missing == null', true],
      ['"approver" in roles', true],
      ['"admin" not in roles', true],
      ['"a" in args.tags && len(args.tags) == 2', true],
      ['args.nested.x[1].y == "z"', true],
      ['args["odd key"] == 1', true],
      ['startsWith(args.env, "pr") || false', true],
      ['glob(args.env, "p*d")', true],
      ['args.env matches "^pr(od|e)$"', true],
      ['lower("ABC") == "abc" && upper("x") == "X"', true],
      ['contains(args.tags, "b") and exists(args.env) and !exists(args.nope)', true],
      ['[1, 2, 3] == [1, 2, 3]', true],
    ]
    for (const [src, want] of cases) expect(run(src, env), src).toBe(want)
  })

  it('has no way to reach prototypes or run code', () => {
    expect(run('args.constructor == null', { args: {} })).toBe(true)
    expect(run('args.__proto__ == null', { args: {} })).toBe(true)
    expect(run('len(args.toString) == 0', { args: {} })).toBe(true)
    expect(() => compileExpression('process.exit(1)', POLICY_VARIABLES)).toThrow(/unknown name process/)
    expect(() => compileExpression('eval("1")', POLICY_VARIABLES)).toThrow(/unknown function eval/)
    expect(() => compileExpression('args.x = 1', POLICY_VARIABLES)).toThrow(ExpressionError)
  })

  it('reports syntax errors with a position, and refuses runaway input', () => {
    expect(() => compileExpression('args.env ==', POLICY_VARIABLES)).toThrow(
      /expected a value, found the end at position 11/,
    )
    expect(() => compileExpression('(args.a', POLICY_VARIABLES)).toThrow(/expected "\)"/)
    expect(() => compileExpression('"abc', POLICY_VARIABLES)).toThrow(/unterminated string at position 0/)
    expect(() => compileExpression('args.a matches "("', POLICY_VARIABLES)).toThrow(
      /invalid regular expression/,
    )
    expect(() => compileExpression('('.repeat(40) + '1' + ')'.repeat(40), POLICY_VARIABLES)).toThrow(
      /nests deeper/,
    )
    expect(() => compileExpression('1 == 1 ' + '&& 1 == 1 '.repeat(300), POLICY_VARIABLES)).toThrow(
      /longer than/,
    )
  })

  it('knows which variables an expression reads', () => {
    expect([...compileExpression('args.a == 1 && "x" in roles', POLICY_VARIABLES).vars].sort()).toEqual([
      'args',
      'roles',
    ])
  })
})

describe('policy rules', () => {
  const p = policy(`
rules:
  - { match: { connector: github }, decision: allow }
  - { match: { connector: github, tool: delete_repo }, decision: deny, reason: never }
  - { match: { tool: github__create_deployment }, decision: approve }
  - { match: { connector: github, tool: create_deployment, args: { env: staging } }, decision: allow }
  - { match: { connector: "*" }, when: 'args.force == true', decision: deny }
  - { match: { tool: "get_*" }, decision: allow }
  - { match: { tool: "get_*", role: auditor }, decision: deny }
  - { match: { connector: slack }, decision: deny }
  - { match: { tool: slack__post }, decision: allow }
  - { match: { agent: triage, connector: slack }, decision: approve }
  - { match: { principal: "user:alice" }, when: 'connector == "jira"', decision: deny }
`)

  const d = (f: CallFacts) => decide(p, f)?.decision ?? 'allow'

  it('lets the most specific rule win', () => {
    const c = ctx()
    expect(d(facts(c, 'github', 'list'))).toBe('allow')
    expect(d(facts(c, 'github', 'delete_repo', {}))).toBe('deny')
    expect(decide(p, facts(c, 'github', 'delete_repo', {}))?.reason).toBe('never')
    expect(d(facts(c, 'github', 'create_deployment', { env: 'prod' }))).toBe('approve')
    expect(d(facts(c, 'github', 'create_deployment', { env: 'staging' }))).toBe('allow')
    // An exact exposed tool name counts as naming its connector too: it beats `connector: slack`.
    expect(d(facts(c, 'slack', 'post', {}))).toBe('allow')
    expect(d(facts(c, 'slack', 'read', {}))).toBe('deny')
    expect(d(facts(c, 'other', 'x', {}))).toBe('allow')
  })

  it('lets deny beat allow at equal specificity, and matches roles, agents and principals', () => {
    expect(d(facts(ctx('k', ['member']), 'x', 'get_thing', {}))).toBe('allow')
    expect(d(facts(ctx('k', ['auditor']), 'x', 'get_thing', {}))).toBe('deny')
    expect(d(facts(agentCtx('triage', 'bob'), 'slack', 'read', {}))).toBe('approve')
    expect(d(facts(agentCtx('other', 'alice'), 'jira', 'create', {}))).toBe('deny')
    expect(d(facts(ctx('alice', ['member'], 'user'), 'jira', 'create', {}))).toBe('deny')
    expect(d(facts(ctx('bob', ['member'], 'user'), 'jira', 'create', {}))).toBe('allow')
    expect(d(facts(ctx(), 'github', 'list', { force: true }))).toBe('deny')
  })

  it('hides from listings only what is denied whatever the arguments', () => {
    const c = ctx()
    expect(listable(p, facts(c, 'github', 'delete_repo'))).toBe(false)
    expect(listable(p, facts(c, 'slack', 'read'))).toBe(false)
    expect(listable(p, facts(c, 'slack', 'post'))).toBe(true)
    // Denied only with force: true — still listed.
    expect(listable(p, facts(c, 'other', 'x'))).toBe(true)
    expect(listable(p, facts(ctx('k', ['auditor']), 'x', 'get_thing'))).toBe(false)
    // `when` that reads no arguments is known when listing.
    expect(listable(p, facts(ctx('alice', ['member'], 'user'), 'jira', 'create'))).toBe(false)
  })

  it('rejects invalid policies with the path of the problem', () => {
    const bad = PolicySpecSchema.safeParse({
      rules: [
        { decision: 'maybe' },
        { decision: 'deny', when: 'args.x ==' },
        { decision: 'allow', approvers: { role: 'approver' } },
      ],
      budgets: [{ name: 'b', per: 'user' }],
    })
    expect(bad.success).toBe(false)
    const msgs = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')
    expect(msgs).toMatch(/rules\.0\.decision/)
    expect(msgs).toMatch(/rules\.1\.when: invalid expression: expected a value/)
    expect(msgs).toMatch(/rules\.2\.approvers: approvers and timeout apply to decision: approve only/)
    expect(msgs).toMatch(/budgets\.0: a budget sets at least one of tool_calls, tokens, cost_usd/)
  })
})

describe('policy engine', () => {
  const rec = (tenant: string, name: string, yaml: string) =>
    ({
      kind: 'Policy',
      tenant,
      name,
      spec: PolicySpecSchema.parse(parseYaml(yaml)),
      generation: 1,
      updatedAt: '',
    }) as never

  it('merges global policies into every tenant, and costs nothing where no policy applies', async () => {
    const { PolicyEngine } = await import('../../src/policy/engine.js')
    const engine = new PolicyEngine({ hashKey: 'k' })
    const tool = (connector: string, name: string) =>
      ({
        exposed: `${connector}__${name}`,
        name,
        connection: { name: connector, tenant: 'acme' },
        def: {},
      }) as never
    engine.load([])
    expect(engine.forTenant('acme')).toBeUndefined()
    const call = { ctx: ctx(), tool: tool('github', 'x'), args: {}, extra: {}, headers: {} } as never
    expect(engine.enforce(call, async () => ({}))).toBeUndefined()
    engine.load([
      rec(
        'default',
        'fence',
        'global: true\nrules: [{ match: { tenant: "acme", connector: shell }, decision: deny }]',
      ),
      rec('acme', 'own', 'rules: [{ match: { connector: github }, decision: approve }]'),
    ])
    expect(engine.evaluate(ctx(), tool('shell', 'run'), {})).toBe('deny')
    expect(engine.evaluate(ctx(), tool('github', 'x'), {})).toBe('approve')
    const other = createContext({ tenant: 'globex', principal: { kind: 'service', id: 'g' } })
    expect(engine.evaluate(other, tool('shell', 'run'), {})).toBe('allow')
    expect(
      engine.visible(ctx(), [tool('shell', 'run'), tool('github', 'x')]).map((t: any) => t.exposed),
    ).toEqual(['github__x'])
    await expect(
      engine.enforce({ ...(call as object), tool: tool('shell', 'run') } as never, async () => ({})),
    ).rejects.toThrow(/policy default\/fence\/0 denies shell__run/)
  })
})
