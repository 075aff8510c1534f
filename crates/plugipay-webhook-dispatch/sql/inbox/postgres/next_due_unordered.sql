-- `next_due` for an inbox that does not order.
SELECT due_at - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT FROM "{table}" WHERE state IN ('pending', 'running') ORDER BY due_at LIMIT 1
