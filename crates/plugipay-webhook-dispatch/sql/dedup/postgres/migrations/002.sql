-- Version 1 -> 2: a tenant in the key (every record of version 1 is a
-- tenant-less one).
ALTER TABLE "{table}" ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey";
ALTER TABLE "{table}" ADD PRIMARY KEY (tenant, event_id, event_type);
