-- Stores a delivery. ?1 tenant, ?2 id, ?3 type, ?4 body, ?5 signature,
-- ?6 matched secret, ?7 account id, ?8 occurred_at, ?9 state, ?10 object id,
-- ?11 order key, ?12 occurred ms, ?13 due in ms, ?14 trace -> a row when inserted.
INSERT INTO "{table}" (tenant, event_id, event_type, body, signature, matched_secret,
     account_id, occurred_at, received_at, state, attempts, due_at, updated_at,
     object_id, order_key, occurred_ms, order_at, trace)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)), ?9, 0, (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) + ?13, (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
     ?10, ?11, ?12, COALESCE(?12, (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))), ?14)
  ON CONFLICT (tenant, event_id, event_type) DO NOTHING
  RETURNING 1
