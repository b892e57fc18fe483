import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../errors.js'

/** Reads the raw body, refusing more than `limit` bytes (checked on Content-Length first). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (Number.isFinite(declared) && declared > limit) {
    req.resume()
    throw new GatewayError('payload_too_large', `request body exceeds ${limit} bytes`)
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        req.off('data', onData)
        req.resume()
        reject(new GatewayError('payload_too_large', `request body exceeds ${limit} bytes`))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)))
    req.once('error', reject)
  })
}

export function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) throw new GatewayError('bad_request', 'request body is empty; expected JSON')
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    throw new GatewayError('bad_request', 'request body is not valid JSON')
  }
}
