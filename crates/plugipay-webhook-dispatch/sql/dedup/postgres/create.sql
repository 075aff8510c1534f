-- The de-duplication table as this release makes it (schema version 2).
CREATE TABLE IF NOT EXISTS "{table}" (
  tenant TEXT NOT NULL DEFAULT '',
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  state TEXT NOT NULL,
  owner TEXT,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (tenant, event_id, event_type)
);
CREATE INDEX IF NOT EXISTS "{table}_expires_at" ON "{table}" (expires_at);
