import { GatewayError } from '../errors.js'

/**
 * A run's tool call needs a human decision first. The run context pauses the run durably
 * (status interrupted, with `payload` as its interrupt) instead of recording the call as failed;
 * the decision resumes it and the call is made then, once.
 */
export class ApprovalPendingError extends GatewayError {
  constructor(
    readonly approvalId: string,
    readonly payload: Record<string, unknown>,
    message: string,
  ) {
    super('forbidden', message, { details: { approval_id: approvalId, status: 'pending' } })
    this.name = 'ApprovalPendingError'
  }
}

/** The interrupt payload of a run paused for approval names the approval. */
export function approvalOfInterrupt(interrupt: unknown): string | undefined {
  const p = interrupt as { type?: unknown; approval_id?: unknown } | null | undefined
  return p && p.type === 'approval' && typeof p.approval_id === 'string' ? p.approval_id : undefined
}
