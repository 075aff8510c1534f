-- $1 tenant, $2 id, $3 type -> its state and lease owner.
SELECT state, lease_owner FROM "{table}" WHERE tenant = $1 AND event_id = $2 AND event_type = $3
