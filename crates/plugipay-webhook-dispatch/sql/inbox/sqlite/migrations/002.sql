-- Version 1 -> 2: a tenant in the key; `due_at` (a pending event's time was
-- in next_attempt_at, a running one's lease in lease_until). SQLite cannot
-- change a primary key: the table is copied.
DROP INDEX IF EXISTS "{table}_due";
ALTER TABLE "{table}" RENAME TO "{table}__v1";
CREATE TABLE "{table}" (
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
  PRIMARY KEY (tenant, event_id, event_type)
);
INSERT INTO "{table}" (tenant, event_id, event_type, body, signature, matched_secret,
    account_id, occurred_at, received_at, state, attempts, due_at, lease_owner,
    last_error, updated_at)
  SELECT '', event_id, event_type, body, signature, matched_secret, account_id,
    occurred_at, received_at, state, attempts,
    CASE WHEN state = 'running' THEN COALESCE(lease_until, next_attempt_at)
         ELSE next_attempt_at END,
    lease_owner, last_error, updated_at
  FROM "{table}__v1";
DROP TABLE "{table}__v1";
CREATE INDEX IF NOT EXISTS "{table}_due" ON "{table}" (due_at) WHERE state IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS "{table}_id" ON "{table}" (event_id);
CREATE INDEX IF NOT EXISTS "{table}_received" ON "{table}" (received_at);
CREATE INDEX IF NOT EXISTS "{table}_state" ON "{table}" (state, updated_at);
