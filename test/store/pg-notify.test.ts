import { afterAll, describe, expect, it } from 'vitest'
import { PgNotifier } from '../../src/store/pg/notify.js'
import { eventually } from '../helpers/gateway.js'
import { usePostgres } from '../helpers/postgres.js'

const pg = usePostgres()

describe('PgNotifier', () => {
  const notifiers: PgNotifier[] = []
  afterAll(async () => {
    for (const n of notifiers) await n.close()
  })

  it('drops a signal too big for NOTIFY without losing the others sent in the same turn', async () => {
    const errors: string[] = []
    const sender = new PgNotifier({ url: pg.url(), namespace: 'big', onError: (e) => errors.push(e.message) })
    const receiver = new PgNotifier({ url: pg.url(), namespace: 'big' })
    notifiers.push(sender, receiver)
    await Promise.all([sender.start(), receiver.start()])
    const heard: string[] = []
    receiver.subscribe('mcp', (id) => heard.push(id))
    sender.publish('mcp', 'x'.repeat(9000))
    sender.publish('mcp', 'small-before-and-after')
    await eventually(() => heard.includes('small-before-and-after'))
    expect(heard.some((h) => h.length > 8000)).toBe(false)
    expect(errors).toEqual(['notification on mcp over 8000 bytes dropped'])
  })
})
