-- How long until the earliest open event a claim could take is due, in ms
-- (an idle worker's wait): an ordered event behind its key's head does not
-- count — the head does. $1 dead events hold their key.
SELECT due_at - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT FROM "{table}" r
WHERE state IN ('pending', 'running')
  AND (r.order_key IS NULL OR r.state = 'running' OR (
        NOT EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'running' OFFSET 0)
        AND NOT EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'pending'
                      AND (o.order_at, o.received_at, o.event_id, o.event_type)
                        < (r.order_at, r.received_at, r.event_id, r.event_type) OFFSET 0)
        AND NOT ($1::BOOLEAN AND EXISTS (SELECT 1 FROM "{table}" o
                    WHERE o.order_key = r.order_key AND o.state = 'dead'
                      AND (o.order_at, o.received_at, o.event_id, o.event_type)
                        < (r.order_at, r.received_at, r.event_id, r.event_type) OFFSET 0))))
ORDER BY due_at LIMIT 1
