-- ?1 sample -> the overview's sample of failing events: the newest ?1 dead
-- events and the newest ?1 pending events that failed before (attempts > 0),
-- by their last change: event_type, dead (1 or 0), the error's first 500
-- characters, updated_at. The dead ones come from the settled index, the
-- pending ones from the open rows' partial index (each one's condition written
-- out, so the planner sees it implied): neither reads done rows.
SELECT * FROM (SELECT event_type, 1 AS dead, substr(last_error, 1, 500) AS last_error, updated_at
   FROM "{table}" WHERE state NOT IN ('pending', 'running') AND state = 'dead' ORDER BY updated_at DESC LIMIT ?1)
UNION ALL
SELECT * FROM (SELECT event_type, 0 AS dead, substr(last_error, 1, 500) AS last_error, updated_at
   FROM "{table}" WHERE state IN ('pending', 'running') AND state = 'pending' AND attempts > 0 ORDER BY updated_at DESC LIMIT ?1)
