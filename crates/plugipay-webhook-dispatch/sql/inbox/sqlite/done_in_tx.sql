-- Inside the handler's transaction: first the savepoint the inbox set at
-- BEGIN is released — gone ("no such savepoint") when the handler ended the
-- transaction itself or SQLite rolled it back (a full disk, an I/O error) —,
-- then the handlers' states (?5), and the move to done when ?6.
-- ?1 tenant, ?2 id, ?3 type, ?4 owner -> a row when the owner still held it.
RELEASE plugipay_webhook_inbox;
UPDATE "{table}" SET state = CASE WHEN ?6 THEN 'done' ELSE state END,
    handlers = ?5, rerun = NULL, updated_at = (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
  WHERE tenant = ?1 AND event_id = ?2 AND event_type = ?3 AND lease_owner = ?4 AND (state || '') = 'running'
  RETURNING 1
