-- `next_due` for an inbox that does not order.
SELECT due_at - (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) FROM "{table}" WHERE state IN ('pending', 'running') ORDER BY due_at LIMIT 1
