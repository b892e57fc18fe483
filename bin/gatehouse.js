#!/usr/bin/env node
// Thin launcher so `npx gatehouse` works from the repo and from an installed package.
import { main } from '../dist/src/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code
  },
  (err) => {
    process.stderr.write(`gatehouse: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
