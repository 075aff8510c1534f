//! What every layer shares: the store error, the configuration error, the
//! bound on a store call, and the clamp on durations.

use std::fmt;

use std::time::Duration;

/// A boxed, sendable future (the store traits are object-safe):
/// `futures_core`'s.
pub use futures_core::future::BoxFuture;

/// What a handler returns on failure. Any error type converts into it.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A store — a de-duplication store or an inbox — could not answer:
/// unreachable, too slow, refusing the statement. The delivery is answered
/// 503 so Plugipay retries later.
///
/// The message names the store and the operation and keeps the server's
/// own reason (`postgres inbox insert: connection refused`, `… database
/// "x" does not exist`); it never holds a secret or an event body.
#[derive(Debug, Clone)]
pub struct StoreError {
    message: String,
    /// The SQLSTATE of a PostgreSQL error.
    code: Option<String>,
}

impl StoreError {
    /// An error with a message (no secrets, no event bodies).
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            code: None,
        }
    }

    /// The same error, with the server's SQLSTATE.
    #[cfg(feature = "postgres")]
    pub(crate) fn with_sqlstate(mut self, code: &str) -> StoreError {
        self.code = Some(code.to_owned());
        self
    }

    /// The SQLSTATE of a PostgreSQL error.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// `what: <error and every cause under it>`.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
    pub(crate) fn caused(what: impl fmt::Display, error: &dyn std::error::Error) -> StoreError {
        StoreError::new(format!("{what}: {}", chain(error)))
    }
}

/// An error and its causes, `: `-separated, each said once (drivers often
/// repeat their cause in their own message).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// A dispatcher or an inbox was configured inconsistently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The longest lease, retention or timeout anything here takes: 100 years.
/// Longer durations (`Duration::MAX` for "forever") are clamped to it, so no
/// clock addition can overflow — not `Instant + Duration`, not PostgreSQL's
/// `BIGINT`, not Redis's `PX`.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Milliseconds in a duration, clamped to [`MAX_DURATION`].
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.min(MAX_DURATION).as_millis()).expect("100 years of milliseconds fit in i64")
}

/// How long one store call may take by default (connecting included): 5 s.
/// A call that takes longer is [`StoreError`], so the delivery is answered
/// 503 and retried instead of hanging.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one store call under `timeout`: a breach is a [`StoreError`].
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(format!(
            "{what} did not answer within {timeout:?}"
        ))),
    }
}
