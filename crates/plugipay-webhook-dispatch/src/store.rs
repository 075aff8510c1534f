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
/// share an id, so the type is part of the key (SPEC.md section 1).
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

/// Proof of a claim: only its holder can complete or release it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token, unique across processes in practice (time, process id,
    /// counter, mixed).
    #[must_use]
    pub fn new() -> ClaimToken {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let a = mix(nanos ^ (u64::from(std::process::id()) << 32));
        let b = mix(n ^ a.rotate_left(29));
        ClaimToken(format!("{a:016x}{b:016x}"))
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

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimToken({}…)", &self.0[..self.0.len().min(8)])
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
/// A process that dies mid-handler never releases: its claim lapses after
/// the lease and the next redelivery runs the handler.
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

    /// A short name for logs (`memory`, `sqlite`, `postgres`, `redis`).
    fn kind(&self) -> &'static str;
}

/// Milliseconds in a duration, saturating.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
