//! The de-duplication store contract: claim, complete, release.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A boxed, sendable future (the store trait is object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a delivery is de-duplicated on: `(id, type)`.
///
/// Plugipay does not document whether the `.v1` and `.v2` of one occurrence
/// share an id, so the type is part of the key (`docs/behaviour.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    /// The event id.
    pub id: String,
    /// The event type.
    pub event_type: String,
}

impl EventKey {
    /// The key of `event`.
    #[must_use]
    pub fn of(event: &plugipay_webhook::WebhookEvent) -> EventKey {
        EventKey {
            id: event.id().to_owned(),
            event_type: event.event_type().to_owned(),
        }
    }

    /// A key from its parts.
    pub fn new(id: impl Into<String>, event_type: impl Into<String>) -> EventKey {
        EventKey {
            id: id.into(),
            event_type: event_type.into(),
        }
    }
}

/// Proof of a claim: only its holder can complete, extend or release it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token: 128 bits from the operating system's random source,
    /// as 32 hex digits — unique across processes and machines, whatever
    /// their clocks and process ids (every container's first process is pid 1).
    #[must_use]
    pub fn new() -> ClaimToken {
        let mut bytes = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut bytes) {
            // Never seen on a supported OS; if it happens, make it loud and
            // still unique within this process.
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            tracing::error!(error = %e, "no OS randomness for a claim token: using time, pid and a counter");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&(nanos ^ u64::from(std::process::id())).to_le_bytes());
            bytes[8..].copy_from_slice(&n.to_le_bytes());
        }
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        ClaimToken(s)
    }

    /// The token's text, as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A token from stored text.
    #[must_use]
    pub fn from_string(s: String) -> ClaimToken {
        ClaimToken(s)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

impl fmt::Debug for ClaimToken {
    /// The first 8 characters (whatever the text: a stored token may be anything).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(8).collect();
        write!(f, "ClaimToken({shown}…)")
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This delivery holds the event until the lease passes: run the handler.
    Acquired(ClaimToken),
    /// Another delivery holds a live claim: answer 409 and let Plugipay retry.
    InProgress,
    /// Already handled within the retention: a duplicate.
    Done,
}

/// The store could not answer (unreachable, full of live claims, …): the
/// delivery is answered 503 so Plugipay retries later.
#[derive(Debug, Clone)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// An error with a message (no secrets, no event bodies).
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "de-duplication store: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// A de-duplication store with claim / complete / release semantics per
/// [`EventKey`].
///
/// - `claim`: atomically, across every process sharing the store — no record,
///   or an expired one (a lapsed lease, a done record past its retention) →
///   a new claim with `lease`, [`Claim::Acquired`]; a live claim →
///   [`Claim::InProgress`]; a live done record → [`Claim::Done`].
/// - `complete`: the claim's holder marks the event done for `retention`.
///   `Ok(false)` when the token no longer holds the claim (the lease lapsed).
/// - `release`: the claim's holder gives the event up (the handler failed),
///   so the next delivery runs it. `Ok(false)` when the token no longer holds it.
///
/// - `extend`: the claim's holder pushes its lease out to `lease` from now
///   (a blocking handler still running past its timeout keeps its claim).
///   `Ok(false)` when the token no longer holds it.
///
/// A process that dies mid-handler never releases: its claim lapses after
/// the lease and the next redelivery runs the handler.
///
/// Durations longer than [`MAX_DURATION`] are taken as `MAX_DURATION`, so
/// `Duration::MAX` means "forever" and never overflows a clock.
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key` for `lease`.
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Marks `key` done, kept for `retention`.
    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases the claim on `key`.
    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Extends the claim on `key` to `lease` from now.
    ///
    /// The default answers an error: a store that cannot extend claims
    /// cannot keep a blocking handler that outlives its timeout from running
    /// twice (every store of this crate can).
    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = (key, token, lease);
        Box::pin(std::future::ready(Err(StoreError::new(format!(
            "the {} store cannot extend a claim",
            self.kind()
        )))))
    }

    /// Whether the store answers now (for health checks): a round trip to
    /// its server, under its timeout. The default answers `Ok`.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// A short name for logs (`memory`, `sqlite`, `postgres`, `redis`).
    fn kind(&self) -> &'static str;
}

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
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(format!(
            "{what} did not answer within {timeout:?}"
        ))),
    }
}
