#!/usr/bin/env node
// Thin launcher so `npx gatehouse` works from the repo and from an installed package.
// V8 flags first (see src/cli/v8-flags.ts), then the CLI: imported dynamically so that none of
// its code is compiled before the flags are set.
import { applyLauncherV8Flags } from '../dist/src/cli/v8-flags.js'

applyLauncherV8Flags()
const { main } = await import('../dist/src/cli/main.js')

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code
  },
  (err) => {
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
