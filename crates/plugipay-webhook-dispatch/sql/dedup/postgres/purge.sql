-- Deletes the expired records (once every `PURGE_EVERY` claims).
DELETE FROM "{table}" WHERE expires_at <= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
