-- Inside the handler's transaction: the handlers' states (?5), and the move
-- to done when ?6. ?1 tenant, ?2 id, ?3 type, ?4 owner -> rows changed.
UPDATE "{table}" SET state = CASE WHEN ?6 THEN 'done' ELSE state END,
     handlers = ?5, rerun = NULL, updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND lease_owner = ?4 AND (state || '') = 'running'
