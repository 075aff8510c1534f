//! What an inbox backend stores, and the one primitive it implements per
//! transition: [`Session::transition`] moves one claimed event, atomically
//! with the check that the caller still owns its lease. Transactions are a
//! capability only the SQL backends have ([`Session::tx`]).

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use std::time::Duration;

use bytes::Bytes;

use super::machine::{Move, State};
use super::query::{Count, FailingRow, ListFilter, Page};
use super::types::{Activity, PruneFilter, Record, RetryFilter, Stats};
use crate::error::{BoxFuture, StoreError};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::tx::Tx;

/// What a backend needs to store a verified delivery.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
    pub(crate) signature: String,
    pub(crate) matched_secret: i64,
    pub(crate) account_id: Option<String>,
    pub(crate) occurred_at: Option<String>,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// `occurred_at` in ms since the epoch, when it parses.
    pub(crate) occurred_ms: Option<i64>,
    /// `data.object.id`, when it is a string.
    pub(crate) object_id: Option<String>,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// The ordering key (ordering on, and the event has one).
    pub(crate) order_key: Option<String>,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// When it becomes due, from now (the reorder window; 0 otherwise).
    pub(crate) due_in_ms: i64,
    /// `pending`, or `skipped` when no handler takes its type.
    pub(crate) state: State,
    /// The receiving request's W3C trace context (feature `otel`).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) trace: Option<String>,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    New,
    Duplicate,
    /// A redelivery of a dead event: pending again.
    Revived,
}

/// A claimed event, for the worker that holds its lease.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) tenant: String,
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
    pub(crate) matched_secret: usize,
    pub(crate) attempt: u32,
    /// When it was first stored (ms since the epoch, the store's clock).
    pub(crate) received_at_ms: i64,
    /// Older than its key's high-water mark (handed over only when stale
    /// events are delivered).
    pub(crate) stale: bool,
    /// It was running under a lease that lapsed: the attempt before this
    /// one was cut short.
    pub(crate) cut_short: bool,
    /// Its handlers' states as stored, read once where the claim is
    /// decoded (`inbox::progress`).
    pub(crate) progress: crate::inbox::progress::Progress,
    /// Which handlers a tool asked to run again (a name, or `*`).
    pub(crate) rerun: Option<String>,
    /// The receiving request's W3C trace context, as stored.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) trace: Option<String>,
}

impl Job {
    /// What `current_attempt` and `is_stale` answer in its handler.
    pub(crate) fn current(&self) -> crate::attempt::Current {
        crate::attempt::Current {
            attempt: self.attempt,
            stale: self.stale,
        }
    }
}

/// What a claim found.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// This worker holds the event's lease now.
    Job(Job),
    /// The event's attempts were exhausted: it was moved to dead instead.
    Exhausted(Job),
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// Ordering: the event is older than its key's high-water mark: it was
    /// moved to stale instead.
    Stale(Job),
    /// Nothing due; the earliest open event is due in this many ms (by the
    /// server's clock), if there is one.
    Idle { due_in_ms: Option<i64> },
}

/// What a claim needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimParams<'a> {
    pub(crate) owner: &'a str,
    pub(crate) lease_ms: i64,
    pub(crate) max_attempts: u32,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// The inbox orders events per key (`order_by`): a claim takes only a
    /// key's head.
    pub(crate) ordered: bool,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// Ordering: a stale event is moved to `stale` (else handed over,
    /// flagged).
    pub(crate) skip_stale: bool,
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(dead_code, reason = "ordering: only the SQL backends order")
    )]
    /// Ordering: a dead event keeps holding its key (the later events of
    /// the key wait until it is retried).
    pub(crate) dead_holds_key: bool,
}

/// A job's state and lease owner, as read back.
pub(crate) type Peeked = Option<(State, Option<String>)>;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use super::sql::Param;

/// A storage backend of the inbox. Object-safe; one [`Session`] per worker.
pub(crate) trait Backend: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `redis`.
    fn kind(&self) -> &'static str;
    /// Stores a delivery (a duplicate adds nothing; a redelivery of a dead
    /// event makes it pending again).
    fn insert<'a>(&'a self, event: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>>;
    /// A connection of a worker's own.
    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>>;
    /// Resolves when new work may be there (a notification), or after `max`.
    fn wait(&self, max: Duration) -> BoxFuture<'_, ()>;
    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;
    /// Events received and done per bucket, `buckets` of `bucket_ms` from
    /// `since_ms`.
    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>>;
    /// A page of a listing: the listed columns only (no body, no
    /// signature).
    fn list<'a>(&'a self, filter: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>>;
    /// How many match `filter`, up to `at_most`.
    fn count<'a>(
        &'a self,
        filter: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>>;
    /// The newest `sample` dead events and the newest `sample` pending
    /// ones that failed before.
    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>>;
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    /// The tools' transitions (revive, rerun): how many moved.
    fn retry<'a>(&'a self, filter: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn prune<'a>(&'a self, filter: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Runs SQL statements on the inbox's database (SQL backends only).
    fn execute<'a>(&'a self, _sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        None
    }
    /// Whether it can order events per key (the SQL backends).
    fn can_order(&self) -> bool {
        false
    }
    /// On SQLite: the store timeout, which is also its busy timeout — a
    /// transactional handler holds the write lock, so its timeout must be
    /// shorter.
    fn lock_timeout(&self) -> Option<Duration> {
        None
    }
}

/// One worker's connection to the backend.
pub(crate) trait Session: Send {
    /// Claims the earliest due event (a lapsed lease is due from its
    /// expiry), or moves it to dead when its attempts are exhausted.
    fn claim<'a>(
        &'a mut self,
        params: ClaimParams<'a>,
    ) -> BoxFuture<'a, Result<Claimed, StoreError>>;
    /// The one primitive: stores `mv` for `job` if `owner` still holds its
    /// lease (`Ok(false)` otherwise), atomically with that check.
    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The job's state and lease owner now (after an outcome that could not
    /// be confirmed).
    fn peek<'a>(&'a mut self, job: &'a Job) -> BoxFuture<'a, Result<Peeked, StoreError>>;
    /// The transaction capability (SQL backends).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn tx(&mut self) -> Option<&mut dyn TxConn> {
        None
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How [`TxConn::begin`] went.
#[derive(Debug)]
pub(crate) enum Begun {
    /// In a transaction, with the job's row locked for this worker.
    Locked,
    /// The owner no longer holds the lease: rolled back already.
    LostLease,
}

/// How a transactional handler's run ended — and, from
/// [`TxConn::commit_done`], how its commit went. One type from the backend
/// to the worker's loop over handlers.
#[derive(Debug)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "only the SQL backends run transactions")
)]
pub(crate) enum TxEnd {
    /// The handler's writes and its state (with the event's move to done
    /// when it was the last) committed together (confirmed).
    Done,
    /// The handler failed, or the transaction did not commit (an aborted
    /// transaction, a failed statement or COMMIT): rolled back; why.
    Failed(String),
    /// The transaction never began (the store did not answer): the handler
    /// did not run.
    NotBegun(String),
    /// The owner no longer holds the lease: rolled back, another worker has
    /// the event.
    LostLease,
    /// The outcome is unknown (the connection failed or timed out during
    /// COMMIT): the connection was thrown away.
    Unknown(String),
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A SQL session's transaction steps. [`run_transactional`](super::transactional)
/// drives them, inside a guard that discards the connection on any exit
/// other than a confirmed commit or rollback.
pub(crate) trait TxConn: Send {
    /// `BEGIN` and lock the job's row if `owner` still holds its lease.
    fn begin<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Begun, StoreError>>;
    /// The handle a handler writes through, inside the transaction.
    fn handle(&mut self) -> Tx<'_>;
    /// The owner-checked store of the handlers' states (`progress`) — and
    /// the move to done when `last` — and `COMMIT`, confirmed.
    fn commit_done<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        progress: &'a str,
        last: bool,
    ) -> BoxFuture<'a, TxEnd>;
    /// `ROLLBACK`, confirmed (`Err`: the connection must be discarded).
    fn rollback(&mut self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Throws the connection away (or leaves it outside any transaction
    /// before anything else can use it); the next use reconnects.
    fn discard(&mut self);
}

/// A page of `limit` asked, from the rows a SQL listing read (at most
/// `limit`): the next page starts after the last one when it is full.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn page(records: Vec<Record>, limit: u32) -> Page {
    let next = (records.len() >= limit as usize)
        .then(|| records.last().map(Record::cursor))
        .flatten();
    Page { records, next }
}

/// A count from `COUNT(*)` over at most `at_most + 1` rows.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn counted(n: i64, at_most: u64) -> Count {
    let n = u64::try_from(n).unwrap_or(0);
    if n > at_most {
        Count::AtLeast(n)
    } else {
        Count::Exactly(n)
    }
}

/// Buckets from `(bucket index, count)` rows of a GROUP BY.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn bucketed(rows: impl IntoIterator<Item = (i64, i64)>, buckets: usize) -> Vec<u64> {
    let mut out = vec![0u64; buckets];
    for (i, n) in rows {
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot += u64::try_from(n).unwrap_or(0);
        }
    }
    out
}
