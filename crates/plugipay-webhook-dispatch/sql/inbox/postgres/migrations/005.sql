-- Version 4 -> 5: each handler's state (JSON, `inbox::progress`), which
-- handlers a tool asked to run again, and the receiving request's W3C trace
-- context (`traceparent`, a newline, `tracestate`).
ALTER TABLE "{table}" ADD COLUMN handlers TEXT;
ALTER TABLE "{table}" ADD COLUMN rerun TEXT;
ALTER TABLE "{table}" ADD COLUMN trace TEXT;
