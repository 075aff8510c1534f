//! Unix time, and ISO 8601 (the dispatch crate's).

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix timestamp (UTC).
pub(crate) use plugipay_webhook_dispatch::rfc3339_utc as iso8601;
