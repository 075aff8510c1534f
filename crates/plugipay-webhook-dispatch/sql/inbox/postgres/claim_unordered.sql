-- The claim of an inbox that does not order: no head to find, nothing stale
-- (its events carry no key), and a plan as small as the statement.
-- $1 owner, $2 lease ms, $3 max attempts -> the row (`rows::job`), then 0, then the error it keeps.
-- A lapsed lease taken again keeps, as its error, that the attempt before
-- was cut short (the worker records it in the handlers' history); the next
-- claim of the row clears that note.
UPDATE "{table}" SET
  state = CASE WHEN attempts >= $3 THEN 'dead' ELSE 'running' END,
  last_error = CASE WHEN attempts >= $3 THEN
                 CASE WHEN state = 'running' THEN 'attempts exhausted: the worker did not finish (crash or kill)' ELSE 'attempts exhausted' END
               WHEN state = 'running' THEN 'the previous attempt was cut short: its worker stopped (crash or kill) or lost its lease'
               WHEN last_error = 'the previous attempt was cut short: its worker stopped (crash or kill) or lost its lease' THEN NULL
               ELSE last_error END,
  attempts = CASE WHEN attempts >= $3 THEN attempts ELSE attempts + 1 END,
  lease_owner = $1,
  due_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $2,
  updated_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
WHERE (tenant, event_id, event_type) = (
    SELECT tenant, event_id, event_type FROM "{table}" r
    WHERE state IN ('pending', 'running') AND due_at <= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
      AND TRUE
    ORDER BY due_at LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING state, tenant, event_id, event_type, body, matched_secret, attempts, received_at,
  handlers, rerun, trace, 0,
  last_error
