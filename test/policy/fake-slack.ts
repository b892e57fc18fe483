import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SlackCall {
  method: string
  token: string | undefined
  /** Form fields; JSON-valued ones (blocks, view) parsed. */
  args: Record<string, any>
}

export interface FakeSlack {
  /** Base URL for WebClient's slackApiUrl (ends in /api/). */
  apiUrl: string
  calls: SlackCall[]
  close(): Promise<void>
}

/**
 * A loopback stand-in for the Slack Web API that speaks its wire format: form-encoded POSTs to
 * /api/{method} with a bearer token, JSON answers with `ok`. Knows chat.postMessage, chat.update
 * and views.open; refuses a wrong token the way Slack does (`invalid_auth`).
 */
export async function startFakeSlack(token: string): Promise<FakeSlack> {
  const calls: SlackCall[] = []
  let ts = 1700000000
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!
      const raw = Buffer.concat(chunks).toString('utf8')
      const type = req.headers['content-type'] ?? ''
      const args: Record<string, any> = {}
      if (type.startsWith('application/json')) Object.assign(args, JSON.parse(raw || '{}'))
      else
        for (const [k, v] of new URLSearchParams(raw)) {
          try {
            args[k] = /^[[{]/.test(v) ? JSON.parse(v) : v
          } catch {
            args[k] = v
          }
        }
      const auth = req.headers.authorization?.replace(/^Bearer /, '')
      calls.push({ method, token: auth, args })
      const reply = (body: Record<string, unknown>) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
        res.end(JSON.stringify(body))
      }
      if (auth !== token) return reply({ ok: false, error: 'invalid_auth' })
      switch (method) {
        case 'chat.postMessage':
          return reply({
            ok: true,
            channel: args.channel,
            ts: `${++ts}.000100`,
            message: { text: args.text },
          })
        case 'chat.update':
          return reply({ ok: true, channel: args.channel, ts: args.ts, text: args.text })
        case 'views.open':
          return reply({ ok: true, view: { id: 'V1', ...args.view } })
        default:
          return reply({ ok: false, error: 'unknown_method' })
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/`,
    calls,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
