import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { ADMIN_KEY, eventually, startTestGateway, textOf, type TestGateway } from '../helpers/gateway.js'
import { isAlive, ROOT, spawnGateway } from '../helpers/process.js'

const FIXTURE = join(ROOT, 'test/fixtures/upstream-server.mjs')
const EVERYTHING = join(ROOT, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js')

describe('stdio upstreams', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startTestGateway({
      manifests: `
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: everything }
spec: { transport: stdio, command: "${process.execPath}", args: ["${EVERYTHING}", "stdio"] }
---
apiVersion: gatehouse/v1
kind: Connector
metadata: { name: fx }
spec:
  transport: stdio
  command: "${process.execPath}"
  args: ["${FIXTURE}", "--stdio"]
  env: { FIXTURE_MODE: "stdio" }
  tools: { deny: [slow] }
`,
    })
  })
  afterAll(async () => gw?.close())

  it('serves the reference everything server through a real MCP client', async () => {
    const c = await gw.client()
    const names = (await c.listTools()).tools.map((t) => t.name)
    expect(names).toContain('everything__echo')
    expect(names).toContain('everything__get-sum')
    expect(textOf(await c.callTool({ name: 'everything__echo', arguments: { message: 'hi' } }))).toBe(
      'Echo: hi',
    )
    const sum = await c.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 3 } })
    expect(textOf(sum)).toContain('5')
    const prompts = (await c.listPrompts()).prompts.map((p) => p.name)
    expect(prompts).toContain('everything__simple-prompt')
    const resources = await c.listResources()
    expect(resources.resources.length).toBeGreaterThan(0)
  })

  it('applies the connector deny list to listing and calling', async () => {
    const c = await gw.client()
    const names = (await c.listTools()).tools.map((t) => t.name)
    expect(names).toContain('fx__echo')
    expect(names).not.toContain('fx__slow')
    await expect(c.callTool({ name: 'fx__slow', arguments: { ms: 1 } })).rejects.toMatchObject({
      code: -32602,
    })
  })

  it('relays progress with the caller token and matches each answer to its call, many at once', async () => {
    const c = await gw.client()
    const seen: number[][] = [[], [], []]
    const runs = seen.map((s, i) =>
      c
        .callTool(
          { name: 'fx__progress', arguments: { steps: 3 } },
          { onprogress: (p) => s.push(p.progress) },
        )
        .then((r) => `${i}:${textOf(r)}`),
    )
    const echoes = Array.from({ length: 40 }, (_, i) =>
      c.callTool({ name: 'fx__echo', arguments: { text: `m${i}` } }).then(textOf),
    )
    expect(await Promise.all(runs)).toEqual(['0:done 3', '1:done 3', '2:done 3'])
    expect(await Promise.all(echoes)).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`))
    expect(seen).toEqual([
      [1, 2, 3],
      [1, 2, 3],
      [1, 2, 3],
    ])
  })

  it('carries the call span to a stdio upstream in _meta.traceparent', async () => {
    const c = await gw.client()
    const seen = JSON.parse(textOf(await c.callTool({ name: 'fx__whoami', arguments: {} })))
    expect(seen.meta.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
  })

  it('a crash mid-call fails that call clearly, restarts the process, and the next call succeeds', async () => {
    const c = await gw.client()
    const pid1 = Number(textOf(await c.callTool({ name: 'fx__pid', arguments: {} })))
    const crashed = await c.callTool({ name: 'fx__crash', arguments: {} })
    expect(crashed.isError).toBe(true)
    expect(textOf(crashed)).toMatch(/connector fx is unavailable: upstream process exited/)
    const pid2 = await eventually(async () => {
      const r = await c.callTool({ name: 'fx__pid', arguments: {} })
      return r.isError ? undefined : Number(textOf(r))
    })
    expect(pid2).not.toBe(pid1)
    expect(isAlive(pid1)).toBe(false)
    expect(textOf(await c.callTool({ name: 'fx__echo', arguments: { text: 'back' } }))).toBe('back')
  })
})

describe('gateway process lifecycle', () => {
  it('SIGTERM drains, exits 0 and leaves no child process behind', async () => {
    const manifest = join(ROOT, 'test/fixtures/manifests/stdio-fixture.yaml')
    const proc = await spawnGateway(['--manifests', manifest])
    const c = new Client({ name: 't', version: '1' })
    await c.connect(
      new StreamableHTTPClientTransport(new URL(proc.url + '/mcp'), {
        requestInit: { headers: { authorization: `Bearer ${ADMIN_KEY}` } },
      }),
    )
    const pid = Number(textOf(await c.callTool({ name: 'fx__pid', arguments: {} })))
    expect(isAlive(pid)).toBe(true)
    await c.close()
    expect(await proc.stop('SIGTERM')).toBe(0)
    await eventually(() => !isAlive(pid), 5000)
  })
})
