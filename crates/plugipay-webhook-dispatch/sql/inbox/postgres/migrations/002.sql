-- Version 1 -> 2: a tenant in the key; `due_at` (a pending event's time was
-- in next_attempt_at, a running one's lease in lease_until).
DROP INDEX IF EXISTS "{table}_due";
ALTER TABLE "{table}" ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE "{table}" RENAME COLUMN next_attempt_at TO due_at;
UPDATE "{table}" SET due_at = COALESCE(lease_until, due_at) WHERE state = 'running';
ALTER TABLE "{table}" DROP COLUMN lease_until;
ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey";
ALTER TABLE "{table}" ADD PRIMARY KEY (tenant, event_id, event_type);
CREATE INDEX IF NOT EXISTS "{table}_due" ON "{table}" (due_at) WHERE state IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS "{table}_id" ON "{table}" (event_id);
CREATE INDEX IF NOT EXISTS "{table}_received" ON "{table}" (received_at);
CREATE INDEX IF NOT EXISTS "{table}_state" ON "{table}" (state, updated_at);
