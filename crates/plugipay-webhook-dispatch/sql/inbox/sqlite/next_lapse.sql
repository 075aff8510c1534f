-- In how many ms the earliest running event's lease lapses (negative: it
-- lapsed that long ago and waits for a worker to reclaim it); NULL when
-- nothing runs. What a worker that stopped (crashed, killed) leaves behind
-- is visible here until then.
SELECT MIN(due_at) - (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) FROM "{table}" WHERE (state || '') = 'running'
