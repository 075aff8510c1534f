-- In how many ms the earliest running event's lease lapses (negative: it
-- lapsed that long ago and waits for a worker to reclaim it); NULL when
-- nothing runs. What a worker that stopped (crashed, killed) leaves behind
-- is visible here until then.
SELECT MIN(due_at) - (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT FROM "{table}" WHERE (state || '') = 'running'
