-- A redelivery of a dead event makes it pending again, its handlers not done
-- (dead ones included) to run afresh (`!`).
-- ?1 tenant, ?2 id, ?3 type -> a row when it did.
UPDATE "{table}" SET state = 'pending', attempts = 0, due_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)), last_error = NULL,
     rerun = '!', lease_owner = NULL, updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND (state || '') IN ('dead')
  RETURNING 1
