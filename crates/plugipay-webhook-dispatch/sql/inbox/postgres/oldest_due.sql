-- How long the oldest due open event has waited, in ms (0: none).
SELECT COALESCE((EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - MIN(due_at), 0) FROM "{table}"
  WHERE state IN ('pending', 'running') AND due_at <= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
