-- Deletes the expired records (once every `PURGE_EVERY` claims).
DELETE FROM "{table}" WHERE expires_at <= (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
