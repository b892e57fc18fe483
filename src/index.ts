/**
 * Public API of the `gatehouse` package: what agent modules and embedders import.
 */
export { defineAgent } from './agents/define.js'
export type { AgentDefinition, AgentContext, AgentEvent } from './agents/define.js'
export type { CallContext, Principal, Role } from './context.js'
export { GatewayError } from './errors.js'
export type { ErrorCode } from './errors.js'
export { startGateway } from './gateway.js'
export type { GatewayHandle, StartOptions } from './gateway.js'
