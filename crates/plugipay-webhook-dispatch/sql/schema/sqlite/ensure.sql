-- Every table's schema version, recorded.
CREATE TABLE IF NOT EXISTS plugipay_webhook_schema (name TEXT PRIMARY KEY, version BIGINT NOT NULL)
