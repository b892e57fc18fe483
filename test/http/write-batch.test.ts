import { createServer, request, type Server, type ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { endSoon, pendingEnds } from '../../src/http/write-batch.js'

/** Answers queued by endSoon go out together at the end of the event-loop turn, whole and in order. */
describe('endSoon', () => {
  let server: Server
  let port: number
  const waiting: ServerResponse[] = []
  /** Requests that arrive wait here until the test releases them all in one turn. */
  let arrived: () => void = () => {}

  beforeAll(async () => {
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      waiting.push(res)
      arrived()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as { port: number }).port
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })

  const arrivals = (n: number) =>
    new Promise<void>((r) => {
      arrived = () => {
        if (waiting.length >= n) r()
      }
      arrived()
    })

  it('ends every queued response in one later turn, with its whole body', async () => {
    const answers = Promise.all([get('/a'), get('/b'), get('/c')])
    await arrivals(3)
    const batch = waiting.splice(0)
    const big = 'x'.repeat(200_000)
    endSoon(batch[0]!, '{"n":0}')
    endSoon(batch[1]!, Buffer.from(`{"n":1,"pad":"${big}"}`))
    endSoon(batch[2]!, '{"n":2}')
    // Nothing is written in the turn that queued them.
    expect(pendingEnds()).toBe(3)
    expect(batch.every((res) => !res.writableEnded)).toBe(true)
    await new Promise((r) => setImmediate(r))
    expect(pendingEnds()).toBe(0)
    expect(batch.every((res) => res.writableEnded)).toBe(true)
    const got = await answers
    expect(got.map((a) => a.status)).toEqual([200, 200, 200])
    expect(JSON.parse(got[0]!.body)).toEqual({ n: 0 })
    expect(JSON.parse(got[1]!.body).pad).toHaveLength(200_000)
    expect(JSON.parse(got[2]!.body)).toEqual({ n: 2 })
  })

  it('skips a response whose client went away (or that was ended meanwhile) and still sends the rest', async () => {
    const gone = get('/gone').catch((err: Error) => err)
    const ended = get('/ended')
    const kept = get('/kept')
    await arrivals(3)
    const [a, b, c] = waiting.splice(0)
    endSoon(a!, '{"late":true}')
    endSoon(b!, '{"late":true}')
    endSoon(c!, '{"kept":true}')
    a!.destroy()
    b!.end('{"early":true}')
    await new Promise((r) => setImmediate(r))
    expect(pendingEnds()).toBe(0)
    expect(await gone).toBeInstanceOf(Error)
    expect(JSON.parse((await ended).body)).toEqual({ early: true })
    expect(JSON.parse((await kept).body)).toEqual({ kept: true })
  })
})
