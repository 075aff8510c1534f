-- $1 id -> the records of one id (every tenant and type; `rows::record`).
SELECT tenant, event_id, event_type, state, attempts, received_at, due_at, last_error, account_id, occurred_at, body, signature, matched_secret, updated_at, object_id, order_key, handlers FROM "{table}" WHERE event_id = $1 ORDER BY tenant, event_type
