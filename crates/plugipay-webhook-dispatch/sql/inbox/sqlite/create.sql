-- The inbox's table as this release makes it (schema version 5).
-- `due_at`: a pending event's next attempt, a running event's lease expiry;
-- one partial index on it serves every claim. Ordering (version 3):
-- `order_key`, `occurred_ms`, `order_at` (its place in the key's order).
-- Version 5: each handler's state (JSON), which handlers a tool asked to run
-- again, the receiving request's W3C trace context.
CREATE TABLE IF NOT EXISTS "{table}" (
  tenant TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  body BLOB NOT NULL,
  signature TEXT NOT NULL,
  matched_secret BIGINT NOT NULL,
  account_id TEXT,
  occurred_at TEXT,
  received_at BIGINT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  due_at BIGINT NOT NULL,
  lease_owner TEXT,
  last_error TEXT,
  updated_at BIGINT NOT NULL,
  object_id TEXT,
  order_key TEXT,
  occurred_ms BIGINT,
  order_at BIGINT,
  handlers TEXT,
  rerun TEXT,
  trace TEXT,
  PRIMARY KEY (tenant, event_id, event_type)
);
CREATE INDEX IF NOT EXISTS "{table}_due" ON "{table}" (due_at) WHERE state IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS "{table}_id" ON "{table}" (event_id);
CREATE INDEX IF NOT EXISTS "{table}_received" ON "{table}" (received_at);
CREATE UNIQUE INDEX IF NOT EXISTS "{table}_key_running" ON "{table}" (order_key)
  WHERE state = 'running' AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{table}_key_pending"
  ON "{table}" (order_key, order_at, received_at, event_id, event_type)
  WHERE state = 'pending' AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{table}_key_done" ON "{table}" (order_key, occurred_ms)
  WHERE state = 'done' AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{table}_key_dead" ON "{table}" (order_key)
  WHERE state = 'dead' AND order_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{table}_object" ON "{table}" (object_id)
  WHERE object_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS "{table}_settled" ON "{table}" (state, updated_at)
  WHERE state NOT IN ('pending', 'running');
