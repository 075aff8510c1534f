-- ?1 table -> its recorded version.
SELECT version FROM plugipay_webhook_schema WHERE name = ?1
