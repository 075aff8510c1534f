-- How long the oldest due open event has waited, in ms (0: none).
SELECT COALESCE((CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) - MIN(due_at), 0) FROM "{table}"
  WHERE state IN ('pending', 'running') AND due_at <= (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
