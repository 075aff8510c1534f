-- Deletes settled events older than ?1 ms (?2: skipped ones too). A key's
-- newest done event is its high-water mark: kept.
DELETE FROM "{table}" WHERE (state = 'done' OR (?2 AND state = 'skipped'))
  AND state IN ('done', 'skipped') AND updated_at < (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) - ?1
  AND NOT (state = 'done' AND order_key IS NOT NULL AND occurred_ms IS NOT NULL
           AND occurred_ms >= (SELECT MAX(h.occurred_ms) FROM "{table}" h
               WHERE h.order_key = "{table}".order_key AND h.state = 'done'))
