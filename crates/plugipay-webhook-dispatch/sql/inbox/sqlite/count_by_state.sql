-- Events per state.
SELECT state, COUNT(*) FROM "{table}" GROUP BY state
