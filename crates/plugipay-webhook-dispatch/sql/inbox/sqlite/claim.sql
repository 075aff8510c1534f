-- The claim: the earliest due open row (pending and due, or running with its
-- lease lapsed) that is the head of its key (an unordered row always is),
-- taken under a new lease — or, when its attempts are exhausted, moved to
-- dead (Exhaust); or, ordered and older than its key's newest done event,
-- to stale (Outdate, when stale events are skipped).
-- ?1 owner, ?2 lease ms, ?3 max attempts, ?4 skip stale, ?5 dead events hold their key
-- -> the row (`rows::job`), then 1 when stale, then the error it keeps.
--
-- A running row already holds its key (a lapsed lease resumes); a pending
-- one waits for a running row of its key, for every pending row before it
-- and — when dead events hold their key — every dead one before it. Each
-- probe is a correlated lookup in its key's partial index.
-- A lapsed lease taken again keeps, as its error, that the attempt before
-- was cut short (the worker records it in the handlers' history); the next
-- claim of the row clears that note.
UPDATE "{table}" SET
  state = CASE WHEN (?4 AND (order_key IS NOT NULL AND occurred_ms IS NOT NULL AND occurred_ms < (
        SELECT MAX(h.occurred_ms) FROM "{table}" h
        WHERE h.order_key = "{table}".order_key AND h.state = 'done'))) THEN 'stale'
               WHEN attempts >= ?3 THEN 'dead' ELSE 'running' END,
  last_error = CASE WHEN (?4 AND (order_key IS NOT NULL AND occurred_ms IS NOT NULL AND occurred_ms < (
        SELECT MAX(h.occurred_ms) FROM "{table}" h
        WHERE h.order_key = "{table}".order_key AND h.state = 'done'))) THEN last_error
                    WHEN attempts >= ?3 THEN
                      CASE WHEN state = 'running' THEN 'attempts exhausted: the worker did not finish (crash or kill)' ELSE 'attempts exhausted' END
                    WHEN state = 'running' THEN 'the previous attempt was cut short: its worker stopped (crash or kill) or lost its lease'
                    WHEN last_error = 'the previous attempt was cut short: its worker stopped (crash or kill) or lost its lease' THEN NULL
                    ELSE last_error END,
  attempts = CASE WHEN (?4 AND (order_key IS NOT NULL AND occurred_ms IS NOT NULL AND occurred_ms < (
        SELECT MAX(h.occurred_ms) FROM "{table}" h
        WHERE h.order_key = "{table}".order_key AND h.state = 'done'))) OR attempts >= ?3 THEN attempts ELSE attempts + 1 END,
  lease_owner = ?1,
  due_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) + ?2,
  updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
WHERE rowid = (
    SELECT rowid FROM "{table}" r
    WHERE state IN ('pending', 'running') AND due_at <= (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
      AND (r.order_key IS NULL OR r.state = 'running' OR (
        NOT EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'running')
        AND NOT EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'pending'
                      AND (o.order_at, o.received_at, o.event_id, o.event_type)
                        < (r.order_at, r.received_at, r.event_id, r.event_type))
        AND NOT (?5 AND EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'dead'
                      AND (o.order_at, o.received_at, o.event_id, o.event_type)
                        < (r.order_at, r.received_at, r.event_id, r.event_type)))))
    ORDER BY due_at LIMIT 1)
RETURNING state, tenant, event_id, event_type, body, matched_secret, attempts, received_at,
  handlers, rerun, trace, CASE WHEN (order_key IS NOT NULL AND occurred_ms IS NOT NULL AND occurred_ms < (
        SELECT MAX(h.occurred_ms) FROM "{table}" h
        WHERE h.order_key = "{table}".order_key AND h.state = 'done')) THEN 1 ELSE 0 END,
  last_error
