-- ?1 table, ?2 version: recorded.
INSERT INTO plugipay_webhook_schema (name, version) VALUES (?1, ?2)
  ON CONFLICT (name) DO UPDATE SET version = excluded.version
