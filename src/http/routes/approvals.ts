import { z } from 'zod'
import { GatewayError } from '../../errors.js'
import { approvalView, type ApprovalService } from '../../policy/approvals.js'
import { APPROVAL_STATUSES, type ApprovalStatus } from '../../store/policy.js'
import type { Route } from '../router.js'

const DecisionBody = z
  .object({
    decision: z.enum(['approve', 'reject', 'edit']),
    args: z.record(z.string(), z.unknown()).optional(),
    reason: z.string().max(2000).optional(),
  })
  .strict()

/** The approvals ledger (SPEC: `GET /v1/approvals?status=pending`, `POST /v1/approvals/{id}/decision`). */
export function approvalRoutes(deps: { approvals: ApprovalService }): Route[] {
  const { approvals } = deps
  return [
    {
      method: 'GET',
      path: '/v1/approvals',
      auth: 'required',
      summary: 'approvals: the tenant’s for approvers, admins and auditors; one’s own requests otherwise',
      handler: async (r) => {
        const q = r.url.searchParams
        const status = q.get('status')
        if (status !== null && !(APPROVAL_STATUSES as readonly string[]).includes(status))
          throw new GatewayError('bad_request', `status must be one of ${APPROVAL_STATUSES.join(', ')}`)
        const limit = q.get('limit')
        const n = limit === null ? undefined : Number(limit)
        if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 500))
          throw new GatewayError('bad_request', 'limit must be an integer from 1 to 500')
        const page = await approvals.list(r.ctx, {
          ...(status ? { status: status as ApprovalStatus } : {}),
          ...(q.get('run_id') ? { runId: q.get('run_id')! } : {}),
          ...(n ? { limit: n } : {}),
          ...(q.get('before') ? { before: q.get('before')! } : {}),
        })
        return { body: { items: page.items.map(approvalView), next: page.next ?? null } }
      },
    },
    {
      method: 'GET',
      path: '/v1/approvals/{id}',
      auth: 'required',
      summary: 'one approval',
      handler: async (r) => ({ body: approvalView(await approvals.get(r.ctx, r.params.id!)) }),
    },
    {
      method: 'POST',
      path: '/v1/approvals/{id}/decision',
      auth: 'required',
      summary:
        'approve, reject or edit a pending approval (its approvers only; deciding twice the same way is a no-op)',
      handler: async (r) => {
        const body = await r.json(DecisionBody)
        const a = await approvals.decide(
          r.ctx,
          r.params.id!,
          {
            decision: body.decision,
            ...(body.args ? { args: body.args } : {}),
            ...(body.reason ? { reason: body.reason } : {}),
          },
          'api',
        )
        return { body: approvalView(a) }
      },
    },
  ]
}
