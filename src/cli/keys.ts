import { GatewayError } from '../errors.js'
import { one, parseArgs, type ParsedArgs } from './args.js'
import { call, target } from './client.js'
import { runRotateMaster } from './rotate-master.js'

const COMMON = ['tenant', 'url', 'key']
const SUBCOMMANDS: Record<string, readonly string[]> = {
  create: [...COMMON, 'role', 'name', 'expires-in', 'scopes'],
  list: COMMON,
  revoke: COMMON,
}

/** `gatehouse keys create|list|revoke` over the admin API; `keys rotate-master` on the store itself. */
export async function runKeys(argv: string[]): Promise<number> {
  const sub = argv[0]
  if (sub === 'rotate-master') return runRotateMaster(argv.slice(1))
  const values = sub ? SUBCOMMANDS[sub] : undefined
  if (!sub || !values)
    throw new GatewayError(
      'bad_request',
      'usage: gatehouse keys create|list|revoke|rotate-master (see `gatehouse help`)',
    )
  const args = parseArgs(argv.slice(1), { command: `keys ${sub}`, values })
  const t = target(args)
  const tenant = one(args, 'tenant')
  const q = tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''
  if (sub === 'create') return create(args, t, tenant)
  if (sub === 'list') {
    const res = (await call(t, 'GET', `/v1/admin/keys${q}`)) as {
      items: {
        id: string
        name: string
        role: string
        revoked_at: string | null
        expires_at: string | null
        scopes?: string[]
      }[]
    }
    for (const k of res.items) {
      process.stdout.write(
        `${k.id}\t${k.role}\t${k.name}${k.scopes?.length ? `\tscopes ${k.scopes.join(' ')}` : ''}${k.revoked_at ? '\trevoked' : ''}${k.expires_at ? `\texpires ${k.expires_at}` : ''}\n`,
      )
    }
    return 0
  }
  const id = args.positionals[0]
  if (!id) throw new GatewayError('bad_request', 'keys revoke needs the key id: gatehouse keys revoke ID')
  await call(t, 'DELETE', `/v1/admin/keys/${encodeURIComponent(id)}${q}`)
  process.stdout.write(`revoked ${id}\n`)
  return 0
}

async function create(
  args: ParsedArgs,
  t: { url: string; key: string },
  tenant: string | undefined,
): Promise<number> {
  const role = one(args, 'role')
  if (!role)
    throw new GatewayError(
      'bad_request',
      'keys create needs --role admin|member|approver|auditor (optional: --scopes "mcp gatehouse:admin", --expires-in SECONDS)',
    )
  const expires = one(args, 'expires-in')
  if (expires !== undefined && !/^\d+$/.test(expires))
    throw new GatewayError('bad_request', `--expires-in takes seconds, got ${expires}`)
  const scopes = one(args, 'scopes')
    ?.split(/[\s,]+/)
    .filter(Boolean)
  const body = {
    role,
    ...(scopes?.length ? { scopes } : {}),
    ...(tenant ? { tenant } : {}),
    ...(one(args, 'name') ? { name: one(args, 'name') } : {}),
    ...(expires ? { expires_in: Number(expires) } : {}),
  }
  const res = (await call(t, 'POST', '/v1/admin/keys', JSON.stringify(body))) as {
    id: string
    key: string
    tenant: string
    scopes?: string[]
    expires_at?: string | null
  }
  process.stdout.write(
    `id: ${res.id}\ntenant: ${res.tenant}\n` +
      (res.scopes?.length ? `scopes: ${res.scopes.join(' ')}\n` : '') +
      (res.expires_at ? `expires: ${res.expires_at}\n` : '') +
      `key: ${res.key}\n(the key is shown only once)\n`,
  )
  return 0
}
