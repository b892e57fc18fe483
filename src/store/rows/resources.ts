import type { ResourceKind, ResourceRecord } from '../types.js'

/** Rows of this table as both stores read them, and their mapping to records. */

export interface Row {
  tenant: string
  kind: string
  name: string
  spec: string
  generation: number
  updated_at: string
}

export const toRecord = (r: Row): ResourceRecord => ({
  kind: r.kind as ResourceKind,
  tenant: r.tenant,
  name: r.name,
  spec: JSON.parse(r.spec) as unknown,
  generation: r.generation,
  updatedAt: r.updated_at,
})
