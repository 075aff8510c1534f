-- Version 1 -> 2: a tenant in the key (every record of version 1 is a
-- tenant-less one). SQLite cannot change a primary key: the table is copied.
ALTER TABLE "{table}" RENAME TO "{table}__v1";
CREATE TABLE "{table}" (
  tenant TEXT NOT NULL DEFAULT '',
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  state TEXT NOT NULL,
  owner TEXT,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (tenant, event_id, event_type)
);
INSERT INTO "{table}" (tenant, event_id, event_type, state, owner, expires_at)
  SELECT '', event_id, event_type, state, owner, expires_at FROM "{table}__v1";
DROP TABLE "{table}__v1";
CREATE INDEX IF NOT EXISTS "{table}_expires_at" ON "{table}" (expires_at);
