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
  {
    version: 2,
    name: 'runs',
    sql: `
CREATE TABLE threads (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  metadata TEXT NOT NULL DEFAULT '{}',
  state TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX threads_tenant ON threads(tenant, created_at);
CREATE TABLE runs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  caller TEXT NOT NULL,
  agent TEXT NOT NULL,
  thread_id TEXT,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  output TEXT,
  error TEXT,
  interrupt TEXT,
  multitask_strategy TEXT NOT NULL,
  webhook TEXT,
  usage TEXT,
  state_before TEXT,
  emitted INTEGER NOT NULL DEFAULT 0,
  cancel_requested TEXT,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX runs_claim ON runs(status, seq);
CREATE INDEX runs_tenant ON runs(tenant, seq);
CREATE INDEX runs_thread ON runs(thread_id, seq);
CREATE TABLE run_journal (
  run_id TEXT NOT NULL,
  pos INTEGER NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  result TEXT,
  attempt INTEGER NOT NULL DEFAULT 1,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (run_id, pos)
);
CREATE TABLE run_events (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  at TEXT NOT NULL,
  PRIMARY KEY (run_id, seq)
);
CREATE TABLE store_items (
  tenant TEXT NOT NULL,
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  expires_at TEXT,
  PRIMARY KEY (tenant, namespace, key)
);
CREATE INDEX store_items_expiry ON store_items(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE webhook_deliveries (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  run_id TEXT,
  url TEXT NOT NULL,
  secret TEXT,
  payload TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  lease_owner TEXT,
  lease_expires_at INTEGER,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX webhook_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_tenant ON webhook_deliveries(tenant, created_at);
CREATE INDEX webhook_tenant_run ON webhook_deliveries(tenant, run_id);
`,
  },
]
