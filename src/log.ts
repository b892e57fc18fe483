import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * The one logger factory. Secret-bearing fields are redacted by path as a second line of
 * defence: code must not log secrets in the first place.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
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
    },
    (destination ?? process.stderr) as pino.DestinationStream,
  )
}
