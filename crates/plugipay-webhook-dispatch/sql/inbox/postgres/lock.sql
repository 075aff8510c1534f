-- Inside the handler's transaction: $1 tenant, $2 id, $3 type, $4 owner
-- -> this transaction's id when the owner still holds the event; locks its
-- row for the whole transaction (claims skip locked rows).
SELECT txid_current() FROM "{table}"
  WHERE tenant = $1 AND event_id = $2 AND event_type = $3 AND lease_owner = $4 AND (state || '') = 'running' FOR UPDATE
