import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EventStore } from '@modelcontextprotocol/server'
import { createContext } from '../../src/context.js'
import { FastPath } from '../../src/mcp/fast-path.js'
import { ownerOf } from '../../src/mcp/handlers.js'
import { Parking } from '../../src/mcp/parking.js'
import type { ToolCall } from '../../src/pipeline/types.js'

/**
 * A 2025 session call whose upstream logs while it runs: the reply turns into an SSE stream and
 * each message is stored for resumption. When the event store fails (a database failover), the
 * message still goes out (without an id) and the process does not die of an unhandled rejection.
 */
describe('fast path with a failing event store', () => {
  let server: Server
  let url = ''
  const ctx = createContext({ tenant: 't1', principal: { kind: 'user', id: 'u1' }, roles: ['member'] })
  const tool = { exposed: 'up__echo', name: 'echo', connection: { name: 'up', tenant: 't1' } }
  const failing: EventStore = {
    storeEvent: async () => {
      throw new Error('database unavailable')
    },
    replayEventsAfter: async () => {
      throw new Error('database unavailable')
    },
  } as unknown as EventStore
  const fast = new FastPath({
    registry: {
      toolIndexNow: () => ({ tools: new Map([['up__echo', tool]]) }),
    } as never,
    parking: new Parking(),
    callTool: async (call: ToolCall) => {
      call.relay?.onNotification?.('notifications/message', { level: 'info', data: 'working' })
      await new Promise((r) => setTimeout(r, 20))
      return { content: [{ type: 'text', text: 'done' }] }
    },
    session: (id) => ({
      id,
      scope: { tenant: 't1' },
      owner: ownerOf(ctx),
      relaysRequests: false,
      logLevel: undefined,
      events: failing,
      touch: () => {},
    }),
  })
  const rejections: unknown[] = []
  const onRejection = (e: unknown) => rejections.push(e)

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection)
    server = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => void fast.tryHandle(req, res, ctx, { tenant: 't1' }, JSON.parse(body)))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`
  })
  afterAll(async () => {
    process.off('unhandledRejection', onRejection)
    await new Promise((r) => server.close(r))
  })

  it('still streams the log message and the answer, without event ids', async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 's1',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'up__echo', arguments: {} },
      }),
    })
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const text = await res.text()
    expect(text).not.toContain('id: ')
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)))
    expect(data.map((m) => m.method ?? m.result?.content?.[0]?.text)).toEqual([
      'notifications/message',
      'done',
    ])
    await new Promise((r) => setTimeout(r, 50))
    expect(rejections).toEqual([])
  })
})
