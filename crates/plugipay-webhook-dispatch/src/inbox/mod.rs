//! The durable inbox: store every verified delivery, acknowledge once it is
//! stored, process it with retries on workers — transactionally on SQL.
//!
//! The state machine (one table of transitions, [`State`]'s) is the same on
//! every backend; each backend stores one transition at a time, atomically
//! with its owner check (the table and the faults: `docs/inbox.md`).

mod backend;
mod backoff;
mod builder;
mod machine;
mod open;
mod order;
mod progress;
mod query;
mod receive;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod state;
#[cfg(feature = "otel")]
mod trace;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transactional;
mod types;
mod worker;

use std::time::Duration;

use crate::error::StoreError;
pub use crate::handlers::DEFAULT_HANDLER;

pub use crate::attempt::{current_attempt, is_stale};
pub use crate::tx::{SqlValue, Tx};
#[cfg(feature = "postgres")]
pub use backend::postgres::{PostgresInbox, PostgresInboxBuilder, DEFAULT_POSTGRES_CONNECTIONS};
#[cfg(feature = "redis")]
pub use backend::redis::{RedisInbox, RedisInboxBuilder, DEFAULT_INBOX_PREFIX};
#[cfg(feature = "sqlite")]
pub use backend::sqlite::{SqliteInbox, SqliteInboxBuilder, DEFAULT_RECEIVE_WINDOW};
pub use builder::{HandlerKey, InboxBuilder};
pub use machine::State;
pub use open::{existing_inbox_from_url, inbox_from_url};
pub use order::{occurred_at_ms, OrderKey, Stale, OCCURRED_AT_SLACK};
pub use progress::{HISTORY_ERROR_LEN, HISTORY_LEN};
pub use query::{Count, Cursor, FailingType, ListFilter, Page, MAX_EXAMINED};
pub use state::{DeadLetter, Inbox, InboxBackend};
pub use types::{
    Activity, AttemptOutcome, AttemptRecord, HandlerState, HandlerStatus, Processed,
    ProcessedEvent, PruneFilter, Record, RetryFilter, Stats, DEFAULT_INBOX_HANDLER_TIMEOUT,
    DEFAULT_INBOX_LEASE, DEFAULT_INBOX_TABLE, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE,
    DEFAULT_RETRY_MAX, MIN_PRUNE_AGE,
};
pub use worker::Workers;

impl Inbox {
    /// Starts `n` workers in this process (on the current Tokio runtime).
    #[must_use]
    pub fn start_workers(&self, n: usize) -> Workers {
        Workers::start(self.inner.clone(), n.max(1))
    }

    /// What becomes of a stale event ([`InboxBuilder::on_stale`]): what a
    /// tool retrying one can tell its user will happen to it.
    #[must_use]
    pub fn stale_events(&self) -> Stale {
        self.inner.options.stale
    }

    /// Counts by state, and the oldest due event's age.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.inner.backend.stats().await
    }

    /// Events, oldest first: all, or of one state and/or type.
    pub async fn list(
        &self,
        state: Option<State>,
        event_type: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        self.list_with(&ListFilter {
            state,
            event_type: event_type.map(str::to_owned),
            limit: limit.max(1),
            ..ListFilter::default()
        })
        .await
    }

    /// Events received and events done per bucket: `buckets` buckets of
    /// `bucket` each, the last one ending now (the console's chart). Done
    /// events count where they became done; pruned ones are not counted.
    pub async fn activity(&self, bucket: Duration, buckets: usize) -> Result<Activity, StoreError> {
        let bucket_ms = i64::try_from(bucket.as_millis()).unwrap_or(i64::MAX).max(1);
        let buckets = buckets.clamp(1, 10_000);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        // Buckets aligned on multiples of the bucket length, the last one
        // holding now.
        let end = (now / bucket_ms + 1).saturating_mul(bucket_ms);
        let since = end.saturating_sub(bucket_ms.saturating_mul(buckets as i64));
        self.inner.backend.activity(since, bucket_ms, buckets).await
    }

    /// Events matching `filter`, in its order, a page at a time
    /// ([`Record::cursor`] of the last one continues). Without body and
    /// signature, and on Redis possibly short of the limit with more to
    /// come: [`list_page`](Inbox::list_page) says where the next page
    /// starts.
    pub async fn list_with(&self, filter: &ListFilter) -> Result<Vec<Record>, StoreError> {
        Ok(self.list_page(filter).await?.records)
    }

    /// A page of the events matching `filter`, in its order, and where the
    /// next one starts ([`Page::next`]). The records carry no body or
    /// signature ([`get`](Inbox::get) reads those). Bounded work per call:
    /// SQL filters in the database (indexes on state, received time, id,
    /// object); Redis walks the per-state index by received time and reads
    /// only the listed fields, examining at most [`MAX_EXAMINED`] events.
    pub async fn list_page(&self, filter: &ListFilter) -> Result<Page, StoreError> {
        self.inner.backend.list(filter).await
    }

    /// How many events match `filter` (its order, page and limit aside),
    /// counting no further than `at_most` (then [`Count::AtLeast`]).
    pub async fn count(&self, filter: &ListFilter, at_most: u64) -> Result<Count, StoreError> {
        self.inner.backend.count(filter, at_most).await
    }

    /// The `top` event types failing most among the newest `sample` dead
    /// events and the newest `sample` pending events that have failed
    /// before (by their last change; `sample` at most 10,000) — what the
    /// console's overview shows. Its cost follows the sample, not the
    /// number of events stored.
    pub async fn failing_types(
        &self,
        sample: u32,
        top: usize,
    ) -> Result<Vec<FailingType>, StoreError> {
        let rows = self.inner.backend.failing(sample.clamp(1, 10_000)).await?;
        Ok(query::failing_types(rows, top))
    }

    /// The stored records of one event id (one per tenant and type).
    pub async fn get(&self, id: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.backend.get(id).await
    }

    /// Moves dead and/or skipped events (or one event; done ones only when
    /// asked) back to pending with their attempts reset; the number moved.
    pub async fn retry(&self, filter: &RetryFilter) -> Result<u64, StoreError> {
        let n = self.inner.backend.retry(filter).await?;
        if n > 0 {
            self.inner.wake.notify_waiters();
        }
        Ok(n)
    }

    /// Deletes `done` events last changed more than `older_than` ago —
    /// never under [`MIN_PRUNE_AGE`] (see [`prune_with`](Inbox::prune_with)
    /// for skipped events and a forced shorter age); the number deleted.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        self.prune_with(&PruneFilter {
            older_than,
            skipped: false,
            force: false,
        })
        .await
    }

    /// Deletes what `filter` says (never pending, running or dead events);
    /// the number deleted. An age under [`MIN_PRUNE_AGE`] is refused unless
    /// `force`: a late redelivery of a pruned event is stored as new and
    /// processed again.
    pub async fn prune_with(&self, filter: &PruneFilter) -> Result<u64, StoreError> {
        if filter.older_than < MIN_PRUNE_AGE && !filter.force {
            return Err(StoreError::new(format!(
                "refusing to prune events younger than {} days: Plugipay may still redeliver them, \
                 and a redelivery of a pruned event is processed again (force to prune anyway)",
                MIN_PRUNE_AGE.as_secs() / 86_400
            )));
        }
        self.inner.backend.prune(filter).await
    }

    /// Runs SQL statements on the inbox's database — to create, at start-up,
    /// the tables your transactional handlers write to. On PostgreSQL they
    /// run in one transaction under the inbox's advisory lock, so replicas
    /// starting together run them one after the other instead of colliding
    /// (`CREATE TABLE IF NOT EXISTS` is not safe against itself). Redis has
    /// no SQL: an error.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        match self.inner.backend.execute(sql) {
            Some(run) => run.await,
            None => Err(StoreError::new(format!(
                "the {} inbox runs no SQL: transactional handlers need the PostgreSQL or SQLite inbox",
                self.inner.backend.kind()
            ))),
        }
    }

    /// Whether the inbox answers now (for a health endpoint).
    pub async fn health(&self) -> Result<(), StoreError> {
        self.inner.backend.stats().await.map(drop)
    }
}

/// The transition table, as `docs/inbox.md` shows it.
#[doc(hidden)]
#[must_use]
pub fn transition_table() -> String {
    machine::table_markdown()
}
