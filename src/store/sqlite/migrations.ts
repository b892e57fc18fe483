/**
 * Versioned schema. Append only: a released migration is never edited; a change is a new entry.
 * Timestamps are ISO-8601 UTC strings so that they sort as text.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'core',
    sql: `
CREATE TABLE tenants (
  name TEXT PRIMARY KEY,
  display_name TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  operator INTEGER NOT NULL DEFAULT 0,
  scopes TEXT NOT NULL DEFAULT '[]',
  hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  created_by TEXT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant);
CREATE TABLE resources (
  tenant TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  generation INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, kind, name)
);
CREATE TABLE audit_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  at TEXT NOT NULL,
  principal TEXT NOT NULL,
  principal_kind TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  outcome TEXT NOT NULL,
  error_code TEXT,
  args_hash TEXT,
  latency_ms REAL,
  request_id TEXT,
  trace_id TEXT
);
CREATE INDEX audit_tenant_seq ON audit_events(tenant, seq);
CREATE TABLE spans (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT,
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  start_ms REAL NOT NULL,
  duration_ms REAL NOT NULL,
  status TEXT NOT NULL,
  attributes TEXT NOT NULL
);
CREATE INDEX spans_tenant_trace ON spans(tenant, trace_id);
CREATE INDEX spans_tenant_seq ON spans(tenant, seq);
`,
  },
]
