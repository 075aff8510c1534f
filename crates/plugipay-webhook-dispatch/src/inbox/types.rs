//! What the inbox stores and shows: records, their handlers' states and
//! attempts, counts and activity, the tools' retry and prune filters, and
//! the defaults.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::machine::State;

/// Default name of the inbox table.
pub const DEFAULT_INBOX_TABLE: &str = "plugipay_webhook_inbox";
/// Default most attempts before an event is dead.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Default first backoff after a failure (doubled after each, full jitter).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default longest backoff.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(3600);
/// Default worker lease on a claimed event.
pub const DEFAULT_INBOX_LEASE: Duration = Duration::from_secs(60);
/// Default handler timeout (or half the lease, when that is shorter; on
/// SQLite, a transactional handler's default is half the store timeout: it
/// holds the database's write lock).
pub const DEFAULT_INBOX_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// The youngest age [`Inbox::prune_with`](super::Inbox::prune_with) deletes without `force`: the
/// de-duplication retention. A record pruned younger than this lets a late
/// redelivery of the same event in as new — and run again.
pub const MIN_PRUNE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A stored event as the operations tools show it. `Debug` shows neither
/// the body nor the signature (payment data, and tamper evidence that
/// belongs in `inbox show`, not in logs).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// The verified tenant (empty: a single verifier).
    pub tenant: String,
    /// Event id.
    pub id: String,
    /// Event type.
    pub event_type: String,
    /// State.
    pub state: State,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was first stored (ms since the epoch).
    pub received_at_ms: i64,
    /// When it is due (ms since the epoch; the store's `due_at`): a
    /// pending event's next attempt, a running event's lease expiry —
    /// when another worker may take it if its own stopped.
    pub due_at_ms: i64,
    /// When its state last changed (ms since the epoch).
    pub updated_at_ms: i64,
    /// The last failure's message (never the body).
    pub last_error: Option<String>,
    /// The account id, when the envelope had one.
    pub account_id: Option<String>,
    /// `occurred_at`, exactly as in the envelope.
    pub occurred_at: Option<String>,
    /// `data.object.id`, when the envelope's object has a string id
    /// (events stored before schema version 3: none).
    pub object_id: Option<String>,
    /// The ordering key the event was stored with (ordering on), with the
    /// tenant in front.
    pub order_key: Option<String>,
    /// The raw body bytes exactly as received.
    pub body: Bytes,
    /// The `X-Plugipay-Signature` value as received.
    pub signature: String,
    /// Which secret of the tenant's keyring verified it.
    pub matched_secret: usize,
    /// Each handler's state, attempts and history, in the order they first
    /// ran (empty until one has run; events stored before schema version
    /// 5 have none).
    pub handlers: Vec<HandlerStatus>,
}

impl Record {
    /// The tenant, `None` without one.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        (!self.tenant.is_empty()).then_some(self.tenant.as_str())
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("received_at_ms", &self.received_at_ms)
            .field("last_error", &self.last_error)
            .field("object_id", &self.object_id)
            .field("handlers", &self.handlers)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("signature", &format_args!("<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Where one (event, handler) pair stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HandlerState {
    /// Not run yet (or run again on request).
    Pending,
    /// Succeeded: never run again because a sibling failed.
    Done,
    /// Failed, and due again with the event.
    Failed,
    /// Failed its last attempt: runs again only after `inbox retry`.
    Dead,
}

impl HandlerState {
    /// The name `inbox show` and the JSON use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerState::Pending => "pending",
            HandlerState::Done => "done",
            HandlerState::Failed => "failed",
            HandlerState::Dead => "dead",
        }
    }
}

impl fmt::Display for HandlerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named handler's state for one event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct HandlerStatus {
    /// The handler's name (`default` for the unnamed registrations).
    pub name: String,
    /// Where it stands.
    pub state: HandlerState,
    /// Its attempts so far (a run cut short by a crash is not counted).
    pub attempts: u32,
    /// Its last failure's message (truncated; never the body).
    pub last_error: Option<String>,
    /// Its last attempts, oldest first (at most
    /// [`HISTORY_LEN`](super::HISTORY_LEN)).
    #[serde(default)]
    pub history: Vec<AttemptRecord>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Done,
    /// It failed (an error, a panic, a timeout).
    Failed,
    /// The attempt was cut short: its worker stopped (crash, kill) or lost
    /// its lease, and another one took the event again when the lease
    /// lapsed. Recorded then, for each handler that was due; not counted
    /// in the handler's attempts.
    CutShort,
}

/// One recorded attempt of one handler.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// When it started (ms since the epoch, this machine's clock).
    pub started_at_ms: i64,
    /// How long it ran.
    pub took_ms: u64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error's message, truncated to
    /// [`HISTORY_ERROR_LEN`](super::HISTORY_ERROR_LEN) characters.
    pub error: Option<String>,
}

/// Events received and events done per time bucket, oldest bucket first
/// ([`Inbox::activity`](super::Inbox::activity)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// The first bucket's start (ms since the epoch).
    pub since_ms: i64,
    /// Each bucket's length in ms.
    pub bucket_ms: i64,
    /// Events received in each bucket (by `received_at`).
    pub received: Vec<u64>,
    /// Events that became `done` in each bucket (by their last change;
    /// events pruned since are not counted).
    pub processed: Vec<u64>,
}

/// Counts by state, and the age of the oldest due event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events per state.
    pub counts: HashMap<State, u64>,
    /// How long the oldest due event (pending past its attempt time, or
    /// running past its lease) has waited, in ms; 0 when nothing is due.
    pub oldest_due_ms: i64,
    /// In how many ms the earliest running event's lease lapses (negative:
    /// it lapsed that long ago and waits for a worker); `None` when nothing
    /// runs. Events a crashed or killed worker held stay `running` until
    /// then: this says when they will be taken again.
    pub next_lease_lapse_ms: Option<i64>,
}

impl Stats {
    /// The count for `state`.
    #[must_use]
    pub fn count(&self, state: State) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }
}

/// Which events `retry` moves back to pending (attempts reset).
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    /// One event id (every tenant and type stored under it), or all that
    /// match the states below.
    pub id: Option<String>,
    /// Dead events.
    pub dead: bool,
    /// Skipped events.
    pub skipped: bool,
    /// Stale events (ordering: older than their key's high-water mark).
    pub stale: bool,
    /// Done events — to run them again on purpose (`retry --done ID
    /// --force`).
    pub done: bool,
    /// Only this type.
    pub event_type: Option<String>,
    /// Only this tenant (`Some("")`: events without one).
    pub tenant: Option<String>,
    /// Only this handler runs again (dead or done events; on a done event
    /// only if it has not succeeded for it — the backfill of a handler
    /// added later). `None`: a dead event reruns its handlers that are not
    /// done; a done one (`done`) reruns all of them.
    pub handler: Option<String>,
    /// Only events received at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
}

/// Which events `prune` deletes: `done` ones (and `skipped` ones on
/// request) last changed more than `older_than` ago — never pending,
/// running or dead ones.
#[derive(Debug, Clone)]
pub struct PruneFilter {
    /// The age.
    pub older_than: Duration,
    /// Skipped events too (they were acknowledged and never processed).
    pub skipped: bool,
    /// Allow an age under [`MIN_PRUNE_AGE`].
    pub force: bool,
}

/// What became of a processed event, for an inbox's observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Processed {
    /// Done (committed, confirmed).
    Done,
    /// Failed; due again after a backoff.
    Retrying,
    /// Failed its last attempt, or was claimed with its attempts exhausted.
    Dead,
    /// No handler for its type.
    Skipped,
    /// Ordering: older than its key's high-water mark, not handed over.
    Stale,
}

impl Processed {
    /// `done`, `retrying`, `dead`, `skipped`, `stale`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Processed::Done => "done",
            Processed::Retrying => "retrying",
            Processed::Dead => "dead",
            Processed::Skipped => "skipped",
            Processed::Stale => "stale",
        }
    }
}

/// Everything about one processed event (its state committed), for
/// [`InboxBuilder::on_processed`](super::InboxBuilder::on_processed).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProcessedEvent<'a> {
    /// The event id.
    pub id: &'a str,
    /// The event type.
    pub event_type: &'a str,
    /// The verified tenant, if any.
    pub tenant: Option<&'a str>,
    /// What became of it.
    pub processed: Processed,
    /// The attempt that ended so (1 for the first).
    pub attempt: u32,
    /// The failure's message (never the body), for `Retrying` and `Dead`.
    pub error: Option<&'a str>,
    /// When it is due again, for `Retrying`.
    pub retry_in: Option<Duration>,
    /// How long the attempt took.
    pub took: Duration,
}
