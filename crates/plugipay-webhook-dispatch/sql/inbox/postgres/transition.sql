-- Every owned transition in one statement: the new state, when it is due
-- next (NULL: unchanged), the error it keeps (NULL: unchanged), whether the
-- attempt is given back, the handlers' states (NULL: unchanged; they settle a
-- rerun request). $1 tenant, $2 id, $3 type, $4 owner, $5 to, $6 due in ms,
-- $7 error, $8 refund (0 or 1), $9 handlers -> rows changed.
-- `(state || '')`: compared as an expression, no partial index on the state
-- can serve the lookup, and the planner takes the primary key.
UPDATE "{table}" SET state = $5::TEXT,
     due_at = CASE WHEN $6::BIGINT IS NULL THEN due_at ELSE (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $6::BIGINT END,
     last_error = COALESCE($7::TEXT, last_error),
     attempts = attempts - $8::INTEGER,
     handlers = COALESCE($9::TEXT, handlers),
     rerun = CASE WHEN $9::TEXT IS NULL THEN rerun ELSE NULL END,
     updated_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
  WHERE tenant = $1 AND event_id = $2 AND event_type = $3 AND lease_owner = $4 AND (state || '') = 'running'
