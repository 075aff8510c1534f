-- Events done per bucket (by updated_at): ?1 since, ?2 bucket length.
SELECT (updated_at - ?1) / ?2, COUNT(*) FROM "{table}"
  WHERE state = 'done' AND updated_at >= ?1 GROUP BY 1
