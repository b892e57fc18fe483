import { pino, type Logger } from 'pino'
import { scrubForLog } from './policy/redact.js'

export type { Logger }

export interface LoggerOptions {
  /** Mask PII and secrets (emails, phone numbers, cards, IBANs, national ids, keys) in every log line; default on. */
  redactValues?: boolean
}

/**
 * The one logger factory. Secret-bearing fields are redacted by path as a second line of
 * defence: code must not log secrets in the first place. A third line: every string logged
 * (messages, fields, error messages and stacks) passes the PII and secret detectors
 * (src/policy/redact.ts) and what they find is masked.
 */
export function createLogger(
  level: string,
  destination?: NodeJS.WritableStream,
  { redactValues = true }: LoggerOptions = {},
): Logger {
  return pino(
    {
      level,
      base: { svc: 'gatehouse' },
      redact: {
        paths: [
          '*.authorization',
          '*.Authorization',
          '*.token',
          '*.key',
          '*.secret',
          '*.password',
          'headers.*',
        ],
        censor: '[redacted]',
      },
      ...(redactValues
        ? {
            hooks: {
              logMethod(args: unknown[], method: (...a: unknown[]) => void) {
                method.apply(
                  this,
                  args.map((a) => scrubForLog(a)),
                )
              },
            },
          }
        : {}),
    },
    (destination ?? process.stderr) as pino.DestinationStream,
  )
}
