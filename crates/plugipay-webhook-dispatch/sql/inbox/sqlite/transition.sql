-- Every owned transition in one statement: the new state, when it is due
-- next (NULL: unchanged), the error it keeps (NULL: unchanged), whether the
-- attempt is given back, the handlers' states (NULL: unchanged; they settle a
-- rerun request). ?1 tenant, ?2 id, ?3 type, ?4 owner, ?5 to, ?6 due in ms,
-- ?7 error, ?8 refund (0 or 1), ?9 handlers -> rows changed.
-- `(state || '')`: compared as an expression, no partial index on the state
-- can serve the lookup, and the planner takes the primary key.
UPDATE "{table}" SET state = ?5,
     due_at = CASE WHEN ?6 IS NULL THEN due_at ELSE (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) + ?6 END,
     last_error = COALESCE(?7, last_error),
     attempts = attempts - ?8,
     handlers = COALESCE(?9, handlers),
     rerun = CASE WHEN ?9 IS NULL THEN rerun ELSE NULL END,
     updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND lease_owner = ?4 AND (state || '') = 'running'
