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
  // Version 3: the A2A endpoint. Push notification configs (secrets sealed, a cursor into the
  // run's event log), message ids already turned into tasks, and an index to list an agent's tasks
  // by last update. Nothing here depends on versions 4 and 5, so it applies in either order.
  {
    version: 3,
    name: 'a2a',
    sql: `
CREATE TABLE a2a_push_configs (
  tenant TEXT NOT NULL,
  task_id TEXT NOT NULL,
  id TEXT NOT NULL,
  url TEXT NOT NULL,
  token TEXT,
  auth_scheme TEXT,
  credentials TEXT,
  wire_version TEXT NOT NULL,
  notified_seq INTEGER NOT NULL DEFAULT 0,
  last_state TEXT NOT NULL DEFAULT '',
  done INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, task_id, id)
);
CREATE INDEX a2a_push_active ON a2a_push_configs(done, updated_at);
CREATE TABLE a2a_messages (
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  message_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant, owner, message_id)
);
CREATE INDEX runs_agent_updated ON runs(tenant, agent, updated_at);
`,
  },
  {
    version: 4,
    name: 'policy',
    sql: `
CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  run_id TEXT,
  request_key TEXT,
  tool TEXT NOT NULL,
  connector TEXT NOT NULL,
  tool_name TEXT NOT NULL,
  args TEXT NOT NULL,
  args_hash TEXT NOT NULL,
  requester TEXT NOT NULL,
  requester_key TEXT NOT NULL,
  approvers TEXT NOT NULL,
  rule TEXT NOT NULL,
  rule_reason TEXT,
  status TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  decision TEXT,
  decider TEXT,
  reason TEXT,
  edited_args TEXT,
  channel TEXT,
  created_at TEXT NOT NULL,
  decided_at TEXT,
  used_at TEXT,
  run_notified INTEGER NOT NULL DEFAULT 0,
  notice TEXT
);
CREATE UNIQUE INDEX approvals_request_key ON approvals(tenant, request_key) WHERE request_key IS NOT NULL;
CREATE INDEX approvals_tenant ON approvals(tenant, created_at);
CREATE INDEX approvals_requester ON approvals(tenant, requester_key, tool, args_hash);
CREATE INDEX approvals_expiry ON approvals(expires_at) WHERE status = 'pending';
CREATE INDEX approvals_unnotified ON approvals(created_at) WHERE run_id IS NOT NULL AND run_notified = 0 AND status != 'pending';
CREATE TABLE limit_counters (
  key TEXT NOT NULL,
  period TEXT NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (key, period)
);
CREATE TABLE limit_buckets (
  key TEXT PRIMARY KEY,
  tokens REAL NOT NULL,
  updated_ms INTEGER NOT NULL
);
`,
  },
  // Version 5: owners everywhere (identity and tenancy). Thread ids are unique per tenant, not
  // globally, so one tenant creating an id another tenant uses learns nothing; memory items belong
  // to the principal that wrote them (rows from before have owner '' and only admins see them).
  {
    version: 5,
    name: 'owners',
    sql: `
CREATE TABLE threads_v5 (
  id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  metadata TEXT NOT NULL DEFAULT '{}',
  state TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, id)
);
INSERT INTO threads_v5 (id, tenant, owner, metadata, state, created_at, updated_at)
  SELECT id, tenant, owner, metadata, state, created_at, updated_at FROM threads;
DROP TABLE threads;
ALTER TABLE threads_v5 RENAME TO threads;
CREATE INDEX threads_tenant ON threads(tenant, created_at);
CREATE INDEX threads_owner ON threads(tenant, owner, created_at);
DROP INDEX IF EXISTS runs_thread;
CREATE INDEX runs_thread ON runs(tenant, thread_id, seq);
CREATE INDEX runs_owner ON runs(tenant, owner, seq);
CREATE TABLE store_items_v5 (
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  expires_at TEXT,
  PRIMARY KEY (tenant, owner, namespace, key)
);
INSERT INTO store_items_v5 (tenant, owner, namespace, key, value, created_at, updated_at, expires_at)
  SELECT tenant, '', namespace, key, value, created_at, updated_at, expires_at FROM store_items;
DROP TABLE store_items;
ALTER TABLE store_items_v5 RENAME TO store_items;
CREATE INDEX store_items_expiry ON store_items(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX store_items_tenant_ns ON store_items(tenant, namespace, key);
`,
  },
  // Version 6: schedule ticks. The primary key is what makes a cron tick happen once across
  // processes: the first INSERT wins, every other claimer of the same tick gets a conflict.
  {
    version: 6,
    name: 'schedule_ticks',
    sql: `
CREATE TABLE schedule_ticks (
  tenant TEXT NOT NULL,
  schedule TEXT NOT NULL,
  tick_at TEXT NOT NULL,
  status TEXT NOT NULL,
  run_id TEXT,
  reason TEXT,
  owner TEXT NOT NULL,
  claimed_at_ms INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant, schedule, tick_at)
);
CREATE INDEX schedule_ticks_claimed ON schedule_ticks(claimed_at_ms) WHERE status = 'claimed';
`,
  },
  // Version 7: token brokering. One connection per (tenant, user, connector), its tokens as an
  // envelope (key id, wrapped data key, ciphertext: never plaintext); OAuth states in flight, keyed
  // by the sha256 of the state parameter; OAuth clients registered per (tenant, connector, issuer).
  {
    version: 7,
    name: 'connections',
    sql: `
CREATE TABLE connections (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  user_id TEXT NOT NULL,
  connector TEXT NOT NULL,
  provider TEXT NOT NULL,
  account TEXT,
  scopes TEXT NOT NULL DEFAULT '[]',
  key_id TEXT NOT NULL,
  wrapped_key TEXT NOT NULL,
  ciphertext TEXT NOT NULL,
  expires_at TEXT,
  has_refresh_token INTEGER NOT NULL DEFAULT 0,
  refresh_locked_until TEXT,
  version INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (tenant, user_id, connector)
);
CREATE INDEX connections_tenant ON connections(tenant, created_at);
CREATE TABLE oauth_states (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  user_id TEXT NOT NULL,
  connector TEXT NOT NULL,
  sealed_verifier TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  scopes TEXT NOT NULL DEFAULT '[]',
  issuer TEXT NOT NULL,
  resource TEXT,
  return_to TEXT,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states(expires_at);
CREATE TABLE oauth_clients (
  tenant TEXT NOT NULL,
  connector TEXT NOT NULL,
  issuer TEXT NOT NULL,
  client_id TEXT NOT NULL,
  sealed_secret TEXT,
  token_endpoint_auth_method TEXT,
  registration TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  PRIMARY KEY (tenant, connector, issuer)
);
`,
  },
  // Version 8: MCP 2025-11-25 sessions shared by replicas (src/store/sessions.ts): a row per live
  // session (absent: terminated, expired or never opened) and the sessions' SSE events for
  // Last-Event-ID resumption on any replica. (Version 7 is the connection store.)
  {
    version: 8,
    name: 'mcp_sessions',
    sql: `
CREATE TABLE mcp_sessions (
  key TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  owner TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX mcp_sessions_expiry ON mcp_sessions(expires_at_ms);
CREATE TABLE mcp_session_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session TEXT NOT NULL,
  stream TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE INDEX mcp_session_events_stream ON mcp_session_events(session, stream, id);
CREATE INDEX mcp_session_events_age ON mcp_session_events(created_at_ms);
`,
  },
  // Version 9: a tool call's span is kept in its audit row (one row per call instead of two);
  // span reads take both tables (src/store/rows/telemetry.ts). Spans written before stay where
  // they are. The index serves trace reads, for the rows that hold a span.
  {
    version: 9,
    name: 'tool_call_spans_in_audit',
    sql: `
ALTER TABLE audit_events ADD COLUMN span_id TEXT;
ALTER TABLE audit_events ADD COLUMN parent_span_id TEXT;
ALTER TABLE audit_events ADD COLUMN start_ms REAL;
ALTER TABLE audit_events ADD COLUMN span_name TEXT;
ALTER TABLE audit_events ADD COLUMN exception_type TEXT;
CREATE INDEX audit_tenant_trace ON audit_events(tenant, trace_id) WHERE span_id IS NOT NULL;
`,
  },
]
