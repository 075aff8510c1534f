-- Inside the handler's transaction (`BEGIN IMMEDIATE` holds the write lock):
-- ?1 tenant, ?2 id, ?3 type, ?4 owner -> a row when the owner still holds it.
SELECT 0 FROM "{table}" WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND lease_owner = ?4 AND (state || '') = 'running'
