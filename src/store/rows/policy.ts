import type { ApprovalRecord } from '../policy.js'

/** Rows of this table as both stores read them, and their mapping to records. */

export interface ApprovalRow {
  id: string
  tenant: string
  run_id: string | null
  request_key: string | null
  tool: string
  connector: string
  tool_name: string
  args: string
  args_hash: string
  requester: string
  requester_key: string
  approvers: string
  rule: string
  rule_reason: string | null
  status: string
  expires_at: string
  decision: string | null
  decider: string | null
  reason: string | null
  edited_args: string | null
  channel: string | null
  created_at: string
  decided_at: string | null
  used_at: string | null
  run_notified: number | boolean
  notice: string | null
}

/** The requester column holds the principal and its roles. */
export function requesterOf(json: string): Pick<ApprovalRecord, 'requester' | 'requesterRoles'> {
  const v = JSON.parse(json) as {
    principal: ApprovalRecord['requester']
    roles: ApprovalRecord['requesterRoles']
  }
  return { requester: v.principal, requesterRoles: v.roles }
}

export function toApproval(r: ApprovalRow): ApprovalRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    ...(r.run_id !== null ? { runId: r.run_id } : {}),
    ...(r.request_key !== null ? { requestKey: r.request_key } : {}),
    tool: r.tool,
    connector: r.connector,
    toolName: r.tool_name,
    args: JSON.parse(r.args) as Record<string, unknown>,
    argsHash: r.args_hash,
    ...requesterOf(r.requester),
    requesterKey: r.requester_key,
    approvers: JSON.parse(r.approvers) as ApprovalRecord['approvers'],
    rule: r.rule,
    ...(r.rule_reason !== null ? { ruleReason: r.rule_reason } : {}),
    status: r.status as ApprovalRecord['status'],
    expiresAt: r.expires_at,
    ...(r.decision !== null ? { decision: r.decision as ApprovalRecord['decision'] } : {}),
    ...(r.decider !== null ? { decider: r.decider } : {}),
    ...(r.reason !== null ? { reason: r.reason } : {}),
    ...(r.edited_args !== null ? { editedArgs: JSON.parse(r.edited_args) as Record<string, unknown> } : {}),
    ...(r.channel !== null ? { channel: r.channel } : {}),
    createdAt: r.created_at,
    ...(r.decided_at !== null ? { decidedAt: r.decided_at } : {}),
    ...(r.used_at !== null ? { usedAt: r.used_at } : {}),
    ...(r.notice !== null ? { notice: JSON.parse(r.notice) as Record<string, unknown> } : {}),
  }
}
