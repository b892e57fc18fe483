/**
 * Versioned PostgreSQL schema, the counterpart of ../sqlite/migrations.ts (same tables and
 * columns, PostgreSQL types; version numbers match where they can). Append only: a released
 * migration is never edited; a change is a new entry. Version 2 already has the final shape of
 * SQLite's version 5 (threads unique per tenant, memory items per owner): PostgreSQL support
 * arrived after it, so there is no older PostgreSQL data to convert. Timestamps are `timestamptz` (read back as ISO-8601 UTC text); lease and attempt
 * times are epoch milliseconds (`bigint`) as in SQLite. JSON documents are `text`, so they come
 * back byte for byte as written (key order included), except memory values, which are `json`
 * (kept verbatim too, and queryable by the filters). Identifier and sort-key columns use the
 * "C" collation: binary order, as in SQLite, whatever the database's locale.
 */
export const PG_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'core',
    sql: `
CREATE TABLE tenants (
  name text COLLATE "C" PRIMARY KEY,
  display_name text,
  created_at timestamptz NOT NULL
);
CREATE TABLE api_keys (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL REFERENCES tenants(name),
  name text NOT NULL,
  role text NOT NULL,
  operator boolean NOT NULL DEFAULT false,
  scopes text NOT NULL DEFAULT '[]',
  hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  revoked_at timestamptz,
  created_by text
);
CREATE INDEX api_keys_tenant ON api_keys(tenant);
CREATE TABLE resources (
  tenant text COLLATE "C" NOT NULL,
  kind text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  spec text NOT NULL,
  generation integer NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, kind, name)
);
CREATE TABLE audit_events (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  tenant text COLLATE "C" NOT NULL,
  at timestamptz NOT NULL,
  principal text NOT NULL,
  principal_kind text NOT NULL,
  action text NOT NULL,
  target text,
  outcome text NOT NULL,
  error_code text,
  args_hash text,
  latency_ms double precision,
  request_id text,
  trace_id text
);
CREATE INDEX audit_tenant_seq ON audit_events(tenant, seq);
CREATE TABLE spans (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trace_id text NOT NULL,
  span_id text NOT NULL,
  parent_span_id text,
  tenant text COLLATE "C" NOT NULL,
  name text NOT NULL,
  kind text NOT NULL,
  start_ms double precision NOT NULL,
  duration_ms double precision NOT NULL,
  status text NOT NULL,
  attributes text NOT NULL
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
  id text COLLATE "C" NOT NULL,
  tenant text COLLATE "C" NOT NULL,
  owner text NOT NULL,
  metadata text NOT NULL DEFAULT '{}',
  state text NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX threads_tenant ON threads(tenant, created_at, id);
CREATE INDEX threads_owner ON threads(tenant, owner, created_at, id);
CREATE TABLE runs (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text COLLATE "C" NOT NULL UNIQUE,
  tenant text COLLATE "C" NOT NULL,
  owner text NOT NULL,
  caller text NOT NULL,
  agent text NOT NULL,
  thread_id text COLLATE "C",
  status text NOT NULL,
  input text NOT NULL,
  output text,
  error text,
  interrupt text,
  multitask_strategy text NOT NULL,
  webhook text,
  usage text,
  state_before text,
  emitted integer NOT NULL DEFAULT 0,
  cancel_requested text,
  lease_owner text,
  lease_expires_at bigint,
  attempts integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX runs_claim ON runs(seq) WHERE status IN ('queued', 'running');
CREATE INDEX runs_tenant ON runs(tenant, seq);
CREATE INDEX runs_thread ON runs(tenant, thread_id, seq);
CREATE INDEX runs_owner ON runs(tenant, owner, seq);
CREATE TABLE run_journal (
  run_id text COLLATE "C" NOT NULL,
  pos integer NOT NULL,
  kind text NOT NULL,
  name text NOT NULL,
  status text NOT NULL,
  result text,
  attempt integer NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (run_id, pos)
);
CREATE TABLE run_events (
  run_id text COLLATE "C" NOT NULL,
  seq integer NOT NULL,
  type text NOT NULL,
  data text NOT NULL,
  at timestamptz NOT NULL,
  PRIMARY KEY (run_id, seq)
);
CREATE TABLE store_items (
  tenant text COLLATE "C" NOT NULL,
  owner text COLLATE "C" NOT NULL,
  namespace text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  value json NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  expires_at timestamptz,
  PRIMARY KEY (tenant, owner, namespace, key)
);
CREATE INDEX store_items_expiry ON store_items(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX store_items_tenant_ns ON store_items(tenant, namespace, key);
CREATE TABLE webhook_deliveries (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  run_id text,
  url text NOT NULL,
  secret text,
  payload text NOT NULL,
  status text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at bigint NOT NULL,
  last_error text,
  lease_owner text,
  lease_expires_at bigint,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX webhook_due ON webhook_deliveries(next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX webhook_tenant ON webhook_deliveries(tenant, created_at);
CREATE INDEX webhook_tenant_run ON webhook_deliveries(tenant, run_id);
`,
  },
  // Version 3: the A2A endpoint (as SQLite's version 3).
  {
    version: 3,
    name: 'a2a',
    sql: `
CREATE TABLE a2a_push_configs (
  tenant text COLLATE "C" NOT NULL,
  task_id text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  url text NOT NULL,
  token text,
  auth_scheme text,
  credentials text,
  wire_version text NOT NULL,
  notified_seq integer NOT NULL DEFAULT 0,
  last_state text NOT NULL DEFAULT '',
  done boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, task_id, id)
);
CREATE INDEX a2a_push_active ON a2a_push_configs(updated_at, task_id, id) WHERE NOT done;
CREATE TABLE a2a_messages (
  tenant text COLLATE "C" NOT NULL,
  owner text COLLATE "C" NOT NULL,
  message_id text COLLATE "C" NOT NULL,
  task_id text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, owner, message_id)
);
CREATE INDEX runs_agent_updated ON runs(tenant, agent, updated_at, seq);
`,
  },
  // Version 4: policy (as SQLite's version 4): the approvals ledger, budget counters, token buckets.
  {
    version: 4,
    name: 'policy',
    sql: `
CREATE TABLE approvals (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  run_id text,
  request_key text,
  tool text NOT NULL,
  connector text NOT NULL,
  tool_name text NOT NULL,
  args text NOT NULL,
  args_hash text NOT NULL,
  requester text NOT NULL,
  requester_key text NOT NULL,
  approvers text NOT NULL,
  rule text NOT NULL,
  rule_reason text,
  status text NOT NULL,
  expires_at timestamptz NOT NULL,
  decision text,
  decider text,
  reason text,
  edited_args text,
  channel text,
  created_at timestamptz NOT NULL,
  decided_at timestamptz,
  used_at timestamptz,
  run_notified boolean NOT NULL DEFAULT false,
  notice text
);
CREATE UNIQUE INDEX approvals_request_key ON approvals(tenant, request_key) WHERE request_key IS NOT NULL;
CREATE INDEX approvals_tenant ON approvals(tenant, created_at, id);
CREATE INDEX approvals_requester ON approvals(tenant, requester_key, tool, args_hash);
CREATE INDEX approvals_expiry ON approvals(expires_at) WHERE status = 'pending';
CREATE INDEX approvals_unnotified ON approvals(created_at) WHERE run_id IS NOT NULL AND NOT run_notified AND status <> 'pending';
CREATE TABLE limit_counters (
  key text COLLATE "C" NOT NULL,
  period text COLLATE "C" NOT NULL,
  used double precision NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (key, period)
);
CREATE TABLE limit_buckets (
  key text COLLATE "C" PRIMARY KEY,
  tokens double precision NOT NULL,
  updated_ms double precision NOT NULL
);
`,
  },
  // Version 6 (same number as SQLite's): schedule ticks; the primary key makes a cron tick
  // happen once across replicas (the first INSERT wins).
  {
    version: 6,
    name: 'schedule_ticks',
    sql: `
CREATE TABLE schedule_ticks (
  tenant text COLLATE "C" NOT NULL,
  schedule text COLLATE "C" NOT NULL,
  tick_at timestamptz NOT NULL,
  status text NOT NULL,
  run_id text,
  reason text,
  owner text NOT NULL,
  claimed_at_ms bigint NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, schedule, tick_at)
);
CREATE INDEX schedule_ticks_claimed ON schedule_ticks(claimed_at_ms) WHERE status = 'claimed';
`,
  },
  // Version 7 (as SQLite's version 7): token brokering — connections (tokens as envelopes only),
  // OAuth states in flight, registered OAuth clients.
  {
    version: 7,
    name: 'connections',
    sql: `
CREATE TABLE connections (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  user_id text COLLATE "C" NOT NULL,
  connector text COLLATE "C" NOT NULL,
  provider text NOT NULL,
  account text,
  scopes text NOT NULL DEFAULT '[]',
  key_id text NOT NULL,
  wrapped_key text NOT NULL,
  ciphertext text NOT NULL,
  expires_at timestamptz,
  has_refresh_token boolean NOT NULL DEFAULT false,
  refresh_locked_until timestamptz,
  version integer NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (tenant, user_id, connector)
);
CREATE INDEX connections_tenant ON connections(tenant, created_at);
CREATE TABLE oauth_states (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  user_id text COLLATE "C" NOT NULL,
  connector text COLLATE "C" NOT NULL,
  sealed_verifier text NOT NULL,
  redirect_uri text NOT NULL,
  scopes text NOT NULL DEFAULT '[]',
  issuer text NOT NULL,
  resource text,
  return_to text,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states(expires_at);
CREATE TABLE oauth_clients (
  tenant text COLLATE "C" NOT NULL,
  connector text COLLATE "C" NOT NULL,
  issuer text COLLATE "C" NOT NULL,
  client_id text NOT NULL,
  sealed_secret text,
  token_endpoint_auth_method text,
  registration text NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, connector, issuer)
);
`,
  },
  // Version 8 (same number as SQLite's): MCP 2025-11-25 sessions shared by replicas — a row per
  // live session and the sessions' SSE events (one identity sequence, ordered per stream).
  {
    version: 8,
    name: 'mcp_sessions',
    sql: `
CREATE TABLE mcp_sessions (
  key text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  owner text COLLATE "C" NOT NULL,
  created_at_ms bigint NOT NULL,
  expires_at_ms bigint NOT NULL
);
CREATE INDEX mcp_sessions_expiry ON mcp_sessions(expires_at_ms);
CREATE TABLE mcp_session_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session text COLLATE "C" NOT NULL,
  stream text COLLATE "C" NOT NULL,
  message text NOT NULL,
  created_at_ms bigint NOT NULL
);
CREATE INDEX mcp_session_events_stream ON mcp_session_events(session, stream, id);
CREATE INDEX mcp_session_events_age ON mcp_session_events(created_at_ms);
`,
  },
  // Version 9 (same as SQLite's): a tool call's span is kept in its audit row.
  {
    version: 9,
    name: 'tool_call_spans_in_audit',
    sql: `
ALTER TABLE audit_events ADD COLUMN span_id text;
ALTER TABLE audit_events ADD COLUMN parent_span_id text;
ALTER TABLE audit_events ADD COLUMN start_ms double precision;
ALTER TABLE audit_events ADD COLUMN span_name text;
ALTER TABLE audit_events ADD COLUMN exception_type text;
CREATE INDEX audit_tenant_trace ON audit_events(tenant, trace_id) WHERE span_id IS NOT NULL;
`,
  },
]
