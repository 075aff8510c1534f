//! The development receiver's views: every delivery a receiver saw —
//! verified or not — with its verdict and diagnosis, a diff of two, Replay
//! and pin. The receiver keeps the deliveries ([`Deliveries`]); the
//! console shows them under `<base>/deliveries` once
//! [`ConsoleBuilder::deliveries`](crate::ConsoleBuilder::deliveries) is
//! given one. `plugipay-webhook listen --ui` is the one in this family.

use std::fmt;

use bytes::Bytes;

/// A boxed future, as [`Deliveries`]' methods return (the trait stays
/// object-safe): `futures_core`'s, the same type as the dispatch crate's.
pub use futures_core::future::BoxFuture;

/// What a receiver made of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It verified: the event's id and type, its tenant, and which of the
    /// secrets matched (0 is the first).
    Verified {
        /// The event's id.
        id: String,
        /// The event's type.
        event_type: String,
        /// The tenant whose secrets verified it, if any.
        tenant: Option<String>,
        /// Which secret matched.
        matched_secret: usize,
    },
    /// It was refused: the status and error code it was answered with, and
    /// the message.
    Rejected {
        /// The HTTP status of the answer.
        status: u16,
        /// The error code (`signature_invalid`, …).
        code: String,
        /// The message.
        message: String,
    },
}

impl Verdict {
    /// `verified`, or the rejection's error code.
    pub fn name(&self) -> &str {
        match self {
            Verdict::Verified { .. } => "verified",
            Verdict::Rejected { code, .. } => code,
        }
    }
}

/// One delivery as a receiver saw it.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its number, in arrival order (from 1).
    pub seq: u64,
    /// When it arrived, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// The request's method.
    pub method: String,
    /// The request's path (and query).
    pub path: String,
    /// Its headers as received (values that are not UTF-8 made lossy).
    pub headers: Vec<(String, String)>,
    /// The body's bytes, exactly as received.
    pub body: Bytes,
    /// What the receiver made of it.
    pub verdict: Verdict,
    /// The diagnosis of `plugipay-webhook verify --explain`, a sentence a
    /// line (empty: none was made).
    pub explain: Vec<String>,
    /// The status the sender was answered with.
    pub answered: Option<u16>,
    /// What forwarding it to the application did (`204 in 3.1 ms`, or the
    /// error), if it was forwarded.
    pub forwarded: Option<String>,
    /// Whether it is pinned: kept, and listed among the pinned.
    pub pinned: bool,
    /// How often it was replayed from the console.
    pub replays: u32,
    /// What its last replay did, if any.
    pub last_replay: Option<String>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers and body are the sender's data (an Authorization header,
        // a customer's details): their sizes only.
        f.debug_struct("Delivery")
            .field("seq", &self.seq)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("verdict", &self.verdict.name())
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

/// Which deliveries to list: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only those numbered below this (the next page).
    pub before: Option<u64>,
    /// Only the pinned ones.
    pub pinned_only: bool,
    /// Only the verified ones (`Some(true)`) or the rejected ones.
    pub verified: Option<bool>,
    /// At most this many.
    pub limit: usize,
}

/// Why a delivery store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError(pub String);

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeliveryError {}

/// Where a development receiver keeps its deliveries, for the console to
/// show, pin and replay.
pub trait Deliveries: Send + Sync + 'static {
    /// The deliveries `query` asks for, newest first.
    fn list(&self, query: DeliveryQuery) -> BoxFuture<'_, Result<Vec<Delivery>, DeliveryError>>;

    /// One delivery by its number.
    fn get(&self, seq: u64) -> BoxFuture<'_, Result<Option<Delivery>, DeliveryError>>;

    /// Pins or unpins a delivery; whether it exists.
    fn set_pinned(&self, seq: u64, pinned: bool) -> BoxFuture<'_, Result<bool, DeliveryError>>;

    /// Where Replay sends a delivery (`None`: the receiver cannot replay).
    fn replay_target(&self) -> Option<String>;

    /// Sends a verified delivery's exact body again, signed afresh, to the
    /// [replay target](Deliveries::replay_target), records what happened as
    /// its [`last_replay`](Delivery::last_replay) and returns it. An error
    /// for a delivery that does not exist, did not verify, or when there is
    /// no target.
    fn replay(&self, seq: u64) -> BoxFuture<'_, Result<String, DeliveryError>>;
}
