-- $1 tenant, $2 id, $3 type, $4 owner, $5 lease ms -> a row when extended.
UPDATE "{table}" SET expires_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + $5
  WHERE tenant = $1 AND event_id = $2 AND event_type = $3 AND owner = $4 AND state = 'claimed'
