/**
 * The policy expression language: a small, side-effect-free language for `when:` conditions.
 * Expressions are parsed once (when a Policy is applied) into a tree of closures; nothing is
 * ever evaluated as JavaScript. Documented in docs/policy.md.
 *
 *   expr    := or
 *   or      := and (('||' | 'or') and)*
 *   and     := not (('&&' | 'and') not)*
 *   not     := ('!' | 'not') not | cmp
 *   cmp     := primary (op primary)?      op: == != < <= > >= in 'not in' matches
 *   primary := literal | path | call | '(' expr ')' | '[' (expr (',' expr)*)? ']'
 *   path    := name ('.' name | '[' string | integer ']')*
 *   call    := name '(' (expr (',' expr)*)? ')'
 *
 * Values are JSON values. Comparisons never coerce: `1 == "1"` is false, `<` compares numbers
 * with numbers and strings with strings, anything else is false. A path that does not exist is
 * `null`. Functions: len, lower, upper, startsWith, endsWith, contains, glob, exists.
 */

export type Value = unknown

/** The variables an expression sees. */
export type Env = Readonly<Record<string, Value>>

export type Evaluator = (env: Env) => Value

export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`)
    this.name = 'ExpressionError'
  }
}

export const MAX_EXPRESSION_LENGTH = 2000
const MAX_DEPTH = 32
const MAX_REGEX_LENGTH = 200

type Tok =
  | { t: 'num'; v: number; p: number }
  | { t: 'str'; v: string; p: number }
  | { t: 'name'; v: string; p: number }
  | { t: 'op'; v: string; p: number }
  | { t: 'end'; p: number }

const OPS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '(', ')', '[', ']', ',', '.']

function tokenize(src: string): Tok[] {
  const out: Tok[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++
      continue
    }
    if (c === '"' || c === "'") {
      const start = i
      let s = ''
      i++
      for (;;) {
        if (i >= src.length) throw new ExpressionError('unterminated string', start)
        const d = src[i]!
        if (d === c) break
        if (d === '\\') {
          const e = src[i + 1]
          if (e === undefined) throw new ExpressionError('unterminated string', start)
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e
          i += 2
          continue
        }
        s += d
        i++
      }
      i++
      out.push({ t: 'str', v: s, p: start })
      continue
    }
    if ((c >= '0' && c <= '9') || (c === '-' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(src.slice(i))!
      out.push({ t: 'num', v: Number(m[0]), p: i })
      i += m[0].length
      continue
    }
    if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(src.slice(i))!
      out.push({ t: 'name', v: m[0], p: i })
      i += m[0].length
      continue
    }
    const op = OPS.find((o) => src.startsWith(o, i))
    if (!op) throw new ExpressionError(`unexpected character ${JSON.stringify(c)}`, i)
    out.push({ t: 'op', v: op, p: i })
    i += op.length
  }
  out.push({ t: 'end', p: src.length })
  return out
}

/** Deep equality of JSON values (objects by keys, regardless of order). */
export function jsonEqual(a: Value, b: Value): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    return (a ?? null) === (b ?? null)
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]))
  }
  const ka = Object.keys(a as object)
  const kb = Object.keys(b as object)
  if (ka.length !== kb.length) return false
  return ka.every((k) => Object.hasOwn(b as object, k) && jsonEqual((a as never)[k], (b as never)[k]))
}

/** Own properties of plain JSON only: no prototype, no functions. */
function member(v: Value, key: string | number): Value {
  if (v === null || typeof v !== 'object') return null
  if (Array.isArray(v)) {
    if (typeof key === 'number') return v[key] ?? null
    return null
  }
  const k = String(key)
  return Object.hasOwn(v, k) ? ((v as Record<string, Value>)[k] ?? null) : null
}

function compare(a: Value, b: Value, op: string): boolean {
  const ok =
    (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')
  if (!ok) return false
  const x = a as number | string
  const y = b as number | string
  return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y
}

function contains(hay: Value, needle: Value): boolean {
  if (typeof hay === 'string') return typeof needle === 'string' && hay.includes(needle)
  if (Array.isArray(hay)) return hay.some((v) => jsonEqual(v, needle))
  if (hay && typeof hay === 'object') return typeof needle === 'string' && Object.hasOwn(hay, needle)
  return false
}

/** `*` matches any run of characters, `?` one character; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const src = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${src}$`, 's')
}

const str = (v: Value): string | undefined => (typeof v === 'string' ? v : undefined)

type Fn = { arity: [number, number]; impl(args: Value[]): Value }

const FUNCTIONS: Record<string, Fn> = {
  len: {
    arity: [1, 1],
    impl: ([v]) =>
      typeof v === 'string' || Array.isArray(v)
        ? v.length
        : v && typeof v === 'object'
          ? Object.keys(v).length
          : 0,
  },
  lower: { arity: [1, 1], impl: ([v]) => str(v)?.toLowerCase() ?? null },
  upper: { arity: [1, 1], impl: ([v]) => str(v)?.toUpperCase() ?? null },
  startsWith: {
    arity: [2, 2],
    impl: ([a, b]) => typeof a === 'string' && typeof b === 'string' && a.startsWith(b),
  },
  endsWith: {
    arity: [2, 2],
    impl: ([a, b]) => typeof a === 'string' && typeof b === 'string' && a.endsWith(b),
  },
  contains: { arity: [2, 2], impl: ([a, b]) => contains(a, b) },
  exists: { arity: [1, 1], impl: ([v]) => v !== null && v !== undefined },
}

interface Compiled {
  fn: Evaluator
  /** Top-level variables the expression reads. */
  vars: Set<string>
}

class Parser {
  private i = 0
  readonly vars = new Set<string>()
  private depth = 0

  constructor(
    private readonly toks: Tok[],
    private readonly variables: ReadonlySet<string>,
  ) {}

  private peek(): Tok {
    return this.toks[this.i]!
  }

  private isOp(v: string): boolean {
    const t = this.peek()
    return t.t === 'op' && t.v === v
  }

  private isWord(v: string): boolean {
    const t = this.peek()
    return t.t === 'name' && t.v === v
  }

  private expect(v: string): void {
    if (!this.isOp(v)) this.fail(`expected "${v}"`)
    this.i++
  }

  private fail(message: string): never {
    const t = this.peek()
    throw new ExpressionError(t.t === 'end' ? `${message}, found the end` : message, t.p)
  }

  parse(): Evaluator {
    const e = this.or()
    if (this.peek().t !== 'end') this.fail('unexpected input')
    return e
  }

  private nest<T>(f: () => T): T {
    if (++this.depth > MAX_DEPTH) this.fail(`expression nests deeper than ${MAX_DEPTH}`)
    try {
      return f()
    } finally {
      this.depth--
    }
  }

  private or(): Evaluator {
    return this.nest(() => {
      let left = this.and()
      while (this.isOp('||') || this.isWord('or')) {
        this.i++
        const l = left
        const r = this.and()
        left = (env) => truthy(l(env)) || truthy(r(env))
      }
      return left
    })
  }

  private and(): Evaluator {
    let left = this.not()
    while (this.isOp('&&') || this.isWord('and')) {
      this.i++
      const l = left
      const r = this.not()
      left = (env) => truthy(l(env)) && truthy(r(env))
    }
    return left
  }

  private not(): Evaluator {
    if (this.isOp('!') || (this.isWord('not') && !this.nextIsWord('in'))) {
      this.i++
      const e = this.nest(() => this.not())
      return (env) => !truthy(e(env))
    }
    return this.cmp()
  }

  private nextIsWord(v: string): boolean {
    const t = this.toks[this.i + 1]
    return t?.t === 'name' && t.v === v
  }

  private cmp(): Evaluator {
    const left = this.primary()
    const t = this.peek()
    if (t.t === 'op' && ['==', '!=', '<', '<=', '>', '>='].includes(t.v)) {
      this.i++
      const right = this.primary()
      switch (t.v) {
        case '==':
          return (env) => jsonEqual(left(env), right(env))
        case '!=':
          return (env) => !jsonEqual(left(env), right(env))
        default:
          return (env) => compare(left(env), right(env), t.v)
      }
    }
    if (this.isWord('in')) {
      this.i++
      const right = this.primary()
      return (env) => contains(right(env), left(env))
    }
    if (this.isWord('not') && this.nextIsWord('in')) {
      this.i += 2
      const right = this.primary()
      return (env) => !contains(right(env), left(env))
    }
    if (this.isWord('matches')) {
      this.i++
      const p = this.peek()
      if (p.t !== 'str') this.fail('matches takes a string literal (a regular expression)')
      if (p.v.length > MAX_REGEX_LENGTH)
        throw new ExpressionError(`regular expression longer than ${MAX_REGEX_LENGTH} characters`, p.p)
      let re: RegExp
      try {
        re = new RegExp(p.v, 'u')
      } catch (err) {
        throw new ExpressionError(`invalid regular expression: ${(err as Error).message}`, p.p)
      }
      this.i++
      return (env) => {
        const v = left(env)
        return typeof v === 'string' && re.test(v)
      }
    }
    return left
  }

  private list(close: string): Evaluator[] {
    const items: Evaluator[] = []
    if (this.isOp(close)) {
      this.i++
      return items
    }
    for (;;) {
      items.push(this.or())
      if (this.isOp(',')) {
        this.i++
        continue
      }
      this.expect(close)
      return items
    }
  }

  private primary(): Evaluator {
    const t = this.peek()
    if (t.t === 'num' || t.t === 'str') {
      this.i++
      const v = t.v
      return () => v
    }
    if (t.t === 'op' && t.v === '(') {
      this.i++
      const e = this.nest(() => this.or())
      this.expect(')')
      return e
    }
    if (t.t === 'op' && t.v === '[') {
      this.i++
      const items = this.nest(() => this.list(']'))
      return (env) => items.map((e) => e(env))
    }
    if (t.t !== 'name') this.fail('expected a value')
    this.i++
    if (t.v === 'true' || t.v === 'false') {
      const v = t.v === 'true'
      return () => v
    }
    if (t.v === 'null') return () => null
    if (this.isOp('(')) {
      const f = FUNCTIONS[t.v]
      if (!f || !Object.hasOwn(FUNCTIONS, t.v))
        throw new ExpressionError(
          `unknown function ${t.v}; functions are ${Object.keys(FUNCTIONS).join(', ')}, glob`,
          t.p,
        )
      this.i++
      if (t.v === 'glob') return this.glob(t.p)
      const args = this.nest(() => this.list(')'))
      if (args.length < f.arity[0] || args.length > f.arity[1])
        throw new ExpressionError(`${t.v} takes ${f.arity[0]} argument(s)`, t.p)
      return (env) => f.impl(args.map((a) => a(env)))
    }
    if (!this.variables.has(t.v))
      throw new ExpressionError(`unknown name ${t.v}; variables are ${[...this.variables].join(', ')}`, t.p)
    this.vars.add(t.v)
    const name = t.v
    const steps: (string | number)[] = []
    for (;;) {
      if (this.isOp('.')) {
        this.i++
        const n = this.peek()
        if (n.t !== 'name') this.fail('expected a field name after "."')
        steps.push(n.v)
        this.i++
        continue
      }
      if (this.isOp('[')) {
        this.i++
        const k = this.peek()
        if (k.t !== 'str' && !(k.t === 'num' && Number.isInteger(k.v) && k.v >= 0))
          this.fail('expected a string or a non-negative integer index')
        steps.push((k as { v: string | number }).v)
        this.i++
        this.expect(']')
        continue
      }
      break
    }
    return (env) => {
      let v: Value = Object.hasOwn(env, name) ? (env[name] ?? null) : null
      for (const s of steps) v = member(v, s)
      return v
    }
  }

  /** glob(value, "pattern"): the pattern must be a literal so it is compiled once. */
  private glob(pos: number): Evaluator {
    const value = this.or()
    this.expect(',')
    const p = this.peek()
    if (p.t !== 'str') throw new ExpressionError('glob takes a string literal pattern', pos)
    this.i++
    this.expect(')')
    const re = globToRegExp(p.v)
    return (env) => {
      const v = value(env)
      return typeof v === 'string' && re.test(v)
    }
  }
}

FUNCTIONS.glob = { arity: [2, 2], impl: () => false } // parsed specially (literal pattern)

function truthy(v: Value): boolean {
  return v !== false && v !== null && v !== undefined && v !== 0 && v !== ''
}

/** Parses and compiles an expression; throws ExpressionError with a position. */
export function compileExpression(src: string, variables: ReadonlySet<string>): Compiled {
  if (src.length > MAX_EXPRESSION_LENGTH)
    throw new ExpressionError(`expression longer than ${MAX_EXPRESSION_LENGTH} characters`, 0)
  const p = new Parser(tokenize(src), variables)
  const e = p.parse()
  return { fn: (env) => truthy(e(env)), vars: p.vars }
}

/** What a policy `when:` expression may read (docs/policy.md "Expressions"). */
export const POLICY_VARIABLES: ReadonlySet<string> = new Set([
  'args',
  'tool',
  'exposed',
  'connector',
  'tenant',
  'principal',
  'user',
  'roles',
  'agent',
])
