import { GatewayError } from '../errors.js'
import { one, rejectUnknown, type ParsedArgs } from './args.js'
import { call, target } from './client.js'

/** `gatehouse keys create|list|revoke` over the admin API. */
export async function runKeys(args: ParsedArgs): Promise<number> {
  const [sub, id] = args.positionals
  const t = target(args)
  const tenant = one(args, 'tenant')
  const q = tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''
  switch (sub) {
    case 'create': {
      rejectUnknown(args, ['role', 'tenant', 'name', 'expires-in', 'url', 'key'], 'keys create')
      const role = one(args, 'role')
      if (!role)
        throw new GatewayError('bad_request', 'keys create needs --role admin|member|approver|auditor')
      const expires = one(args, 'expires-in')
      const body = {
        role,
        ...(tenant ? { tenant } : {}),
        ...(one(args, 'name') ? { name: one(args, 'name') } : {}),
        ...(expires ? { expires_in: Number(expires) } : {}),
      }
      const res = (await call(t, 'POST', '/v1/admin/keys', JSON.stringify(body))) as {
        id: string
        key: string
        tenant: string
      }
      process.stdout.write(
        `id: ${res.id}\ntenant: ${res.tenant}\nkey: ${res.key}\n(the key is shown only once)\n`,
      )
      return 0
    }
    case 'list': {
      rejectUnknown(args, ['tenant', 'url', 'key'], 'keys list')
      const res = (await call(t, 'GET', `/v1/admin/keys${q}`)) as {
        items: {
          id: string
          name: string
          role: string
          revoked_at: string | null
          expires_at: string | null
        }[]
      }
      for (const k of res.items)
        process.stdout.write(
          `${k.id}\t${k.role}\t${k.name}${k.revoked_at ? '\trevoked' : ''}${k.expires_at ? `\texpires ${k.expires_at}` : ''}\n`,
        )
      return 0
    }
    case 'revoke': {
      rejectUnknown(args, ['tenant', 'url', 'key'], 'keys revoke')
      if (!id) throw new GatewayError('bad_request', 'keys revoke needs the key id')
      await call(t, 'DELETE', `/v1/admin/keys/${encodeURIComponent(id)}${q}`)
      process.stdout.write(`revoked ${id}\n`)
      return 0
    }
    default:
      throw new GatewayError('bad_request', 'usage: gatehouse keys create|list|revoke (see `gatehouse help`)')
  }
}
