-- $1 tenant, $2 id, $3 type -> the record's state, while it has not expired.
SELECT state FROM "{table}" WHERE tenant = $1 AND event_id = $2 AND event_type = $3 AND expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
