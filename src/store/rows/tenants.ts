import type { Tenant } from '../types.js'

/** Rows of this table as both stores read them, and their mapping to records. */

export interface Row {
  name: string
  display_name: string | null
  created_at: string
}

export const toTenant = (r: Row): Tenant => ({
  name: r.name,
  ...(r.display_name ? { displayName: r.display_name } : {}),
  createdAt: r.created_at,
})
