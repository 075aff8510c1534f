-- The tools' transitions: a dead, skipped or stale event pending again, a
-- done one rerun (every handler, `*`, unless one is named; a dead one's
-- handlers not done, `!`, dead ones included). ?1 id, ?2 dead,
-- ?3 skipped, ?4 done, ?5 type, ?6 tenant, ?7 stale, ?8 handler,
-- ?9 received since (ms) -> how many moved.
UPDATE "{table}" SET state = 'pending', attempts = 0, due_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)), last_error = NULL,
     lease_owner = NULL, updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
     rerun = COALESCE(?8, CASE WHEN state = 'done' THEN '*' ELSE '!' END)
  WHERE (?1 IS NULL OR event_id = ?1)
    AND ((?2 AND state = 'dead') OR (?3 AND state = 'skipped')
         OR (?7 AND state = 'stale') OR (?4 AND state IN ('done')))
    AND state IN ('dead', 'skipped', 'stale', 'done')
    AND (?5 IS NULL OR event_type = ?5)
    AND (?6 IS NULL OR tenant = ?6)
    AND (?9 IS NULL OR received_at >= ?9)
