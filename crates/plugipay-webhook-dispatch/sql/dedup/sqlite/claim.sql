-- Inserts a claim, or takes over an expired record; RETURNING tells whether
-- this statement won. ?1 tenant, ?2 id, ?3 type, ?4 owner, ?5 lease ms.
INSERT INTO "{table}" AS t (tenant, event_id, event_type, state, owner, expires_at)
  VALUES (?1, ?2, ?3, 'claimed', ?4, (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) + ?5)
  ON CONFLICT (tenant, event_id, event_type) DO UPDATE
     SET state = 'claimed', owner = excluded.owner, expires_at = excluded.expires_at
     WHERE t.expires_at <= (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  RETURNING owner
