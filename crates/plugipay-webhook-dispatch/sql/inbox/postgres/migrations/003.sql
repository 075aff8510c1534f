-- Version 2 -> 3: the columns of ordering and the object id (NULL for the
-- events stored before: they are not ordered).
ALTER TABLE "{table}" ADD COLUMN object_id TEXT;
ALTER TABLE "{table}" ADD COLUMN order_key TEXT;
ALTER TABLE "{table}" ADD COLUMN occurred_ms BIGINT;
ALTER TABLE "{table}" ADD COLUMN order_at BIGINT;
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
