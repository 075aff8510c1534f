-- ?1 tenant, ?2 id, ?3 type, ?4 owner -> a row when released.
DELETE FROM "{table}" WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND owner = ?4 AND state = 'claimed'
