-- Inside the handler's transaction: the handlers' states ($6), and the move to
-- done when $7. $1 tenant, $2 id, $3 type, $4 owner, $5 the transaction id
-- `lock` read: a handler that ended the transaction itself makes the move find
-- nothing, and a move that finds nothing divides by zero, which aborts the
-- transaction: the COMMIT after it rolls back.
WITH moved AS (
     UPDATE "{table}" SET state = CASE WHEN $7::BOOLEAN THEN 'done' ELSE state END,
         handlers = $6::TEXT, rerun = NULL, updated_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
     WHERE tenant = $1 AND event_id = $2 AND event_type = $3 AND lease_owner = $4 AND (state || '') = 'running'
       AND txid_current() = $5
     RETURNING 1)
  SELECT 1 / COUNT(*) FROM moved
