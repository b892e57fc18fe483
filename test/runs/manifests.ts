import { resolve } from 'node:path'

const FLEX = resolve('test/fixtures/agents/flex.mjs')
const TYPED = resolve('test/fixtures/agents/typed.ts')

/** The test agents: `flex` (test/fixtures/agents/flex.mjs) and `typed` (a .ts module with a zod schema). */
export const agentManifests = (tenant?: string) => `
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: flex${tenant ? `, tenant: ${tenant}` : ''} }
spec: { type: code, module: "${FLEX}" }
---
apiVersion: gatehouse/v1
kind: Agent
metadata: { name: typed${tenant ? `, tenant: ${tenant}` : ''} }
spec: { type: code, module: "${TYPED}", description: "Adds two numbers" }
`
