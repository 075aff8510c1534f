-- Events received per bucket: $1 since (ms), $2 bucket length (ms).
SELECT (received_at - $1) / $2, COUNT(*) FROM "{table}"
  WHERE received_at >= $1 GROUP BY 1
