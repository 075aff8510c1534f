//! The durable inbox: store every verified delivery, acknowledge once it is
//! stored, process it with retries on workers — transactionally on SQL.
//!
//! ```text
//!             receive (202 once stored)
//!                    │
//!                    ▼
//!   ┌──────── pending ◄──────────── failure, attempts < max (backoff, full jitter)
//!   │            │ claim (lease)          ▲
//!   │            ▼                        │
//!   │         running ── handler ok ──► done
//!   │            │  └── lease lapses ──► pending (another worker takes it)
//!   │            └───── failure, attempts = max ──► dead ── redelivery / retry ──► pending
//!   └── no handler for the type ──► skipped ── retry --skipped ──► pending
//! ```

mod backoff;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tx;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plugipay_webhook::WebhookEvent;
use serde::de::DeserializeOwned;

use crate::dispatcher::{ConfigError, Handler, HandlerError, Outcome};
use crate::store::{BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT, MAX_DURATION};

#[cfg(feature = "redis")]
pub use self::redis::{RedisInbox, DEFAULT_INBOX_PREFIX};
#[cfg(feature = "postgres")]
pub use postgres::PostgresInbox;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteInbox;
pub use tx::{SqlValue, Tx};
pub use worker::{current_attempt, Processed, Workers};

pub(crate) use tx::TxHandler;

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

/// An event's state in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum State {
    /// Due at its next attempt time.
    Pending,
    /// Claimed by one worker under a lease.
    Running,
    /// Processed.
    Done,
    /// Failed the maximum number of attempts.
    Dead,
    /// No handler for its type when it arrived (acknowledged, kept).
    Skipped,
}

impl State {
    /// Every state.
    pub const ALL: [State; 5] = [
        State::Pending,
        State::Running,
        State::Done,
        State::Dead,
        State::Skipped,
    ];

    /// The stored spelling: `pending`, `running`, `done`, `dead`, `skipped`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Dead => "dead",
            State::Skipped => "skipped",
        }
    }

    /// The state a stored spelling names.
    #[must_use]
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backend needs to store a verified delivery.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
    pub(crate) signature: String,
    pub(crate) matched_secret: i64,
    pub(crate) account_id: Option<String>,
    pub(crate) occurred_at: Option<String>,
    pub(crate) state: State,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    New,
    Duplicate,
    Revived,
}

/// A claimed event, for the worker that holds its lease.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
    pub(crate) matched_secret: usize,
    pub(crate) attempt: u32,
}

/// How a transactional run ended.
#[derive(Debug)]
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "only SQL inboxes run transactional handlers")
)]
pub(crate) enum TxEnd {
    /// The handler's writes and "done" committed together.
    Done,
    /// The handler failed; everything was rolled back.
    Failed(String),
    /// The lease was lost before commit: rolled back, another worker has it.
    LostLease,
}

/// A stored event as the operations tools show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
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
    /// When it is due next (ms since the epoch; for pending events).
    pub next_attempt_at_ms: i64,
    /// The last failure's message (never the body).
    pub last_error: Option<String>,
    /// The account id, when the envelope had one.
    pub account_id: Option<String>,
    /// The raw body bytes exactly as received.
    pub body: Bytes,
    /// The `X-Plugipay-Signature` value as received.
    pub signature: String,
}

/// Counts by state, and the age of the oldest due event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events per state.
    pub counts: HashMap<State, u64>,
    /// How long the oldest due (pending, past its attempt time) event has
    /// waited, in ms; 0 when nothing is due.
    pub oldest_due_ms: i64,
}

impl Stats {
    /// The count for `state`.
    #[must_use]
    pub fn count(&self, state: State) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }
}

/// Which events `retry` moves back to pending.
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    /// One event id (any type), or all matching the states below.
    pub id: Option<String>,
    /// Dead events.
    pub dead: bool,
    /// Skipped events.
    pub skipped: bool,
    /// Only this type.
    pub event_type: Option<String>,
}

/// A storage backend of the inbox. Object-safe; one [`Session`] per worker.
pub(crate) trait Backend: Send + Sync + 'static {
    fn insert<'a>(&'a self, event: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>>;
    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>>;
    /// Resolves when new work may be there (a notification), or after `max`.
    fn wait(&self, max: Duration) -> BoxFuture<'_, ()>;
    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;
    fn list<'a>(
        &'a self,
        state: Option<State>,
        event_type: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;
    fn retry<'a>(&'a self, filter: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn prune(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, StoreError>>;
    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    fn kind(&self) -> &'static str;
    /// Whether handlers can write in the inbox's own transaction.
    fn transactional(&self) -> bool {
        true
    }
}

/// One worker's connection to the backend.
pub(crate) trait Session: Send {
    fn claim<'a>(
        &'a mut self,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>>;
    fn complete<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Back to pending after `retry_in`, or dead when `dead`.
    fn fail<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        error: &'a str,
        retry_in: Duration,
        dead: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn skip<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn extend<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Runs `handler` in a transaction that also marks the event done.
    fn transaction<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        handler: &'a TxHandler,
        event: WebhookEvent,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<TxEnd, StoreError>>;
}

/// [`Backend::wait`] for a backend whose listener task wakes `wake`: the
/// first of a notification and `max`.
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn notified_within(
    wake: &Arc<tokio::sync::Notify>,
    max: Duration,
) -> BoxFuture<'static, ()> {
    let wake = wake.clone();
    Box::pin(async move {
        let _ = tokio::time::timeout(max, wake.notified()).await;
    })
}

/// Options of an [`Inbox`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) lease: Duration,
    pub(crate) handler_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) poll_interval: Duration,
}

/// Called with each processed event's id, type and what became of it.
pub(crate) type Observer = Arc<dyn Fn(&str, &str, Processed) + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) options: Options,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) observer: Option<Observer>,
}

/// A durable inbox: [`receive`](Inbox::receive) stores a verified delivery
/// and answers [`Outcome::Stored`] (202) — or [`Outcome::StoreUnavailable`]
/// (503), never a 2xx for an event that is not stored — before any handler
/// runs; [`Workers`] ([`start_workers`](Inbox::start_workers)) process due
/// events with retries. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox};
///
/// let inbox = Inbox::builder(SqliteInbox::open("inbox.sqlite3")?)
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let workers = inbox.start_workers(4);
/// // In the webhook handler, after verification:
/// // let outcome = inbox.receive(&event).await; // 202 or 503
/// # workers.shutdown(std::time::Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Inbox {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.inner.handlers.keys().collect();
        types.sort();
        f.debug_struct("Inbox")
            .field("backend", &self.inner.backend.kind())
            .field("types", &types)
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Builds an [`Inbox`]: the same handler registration as the dispatcher's,
/// plus transactional handlers.
pub struct InboxBuilder {
    backend: Arc<dyn Backend>,
    handlers: HashMap<String, Handler>,
    options: Options,
    observer: Option<Observer>,
}

impl fmt::Debug for InboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxBuilder")
            .field("backend", &self.backend.kind())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl InboxBuilder {
    /// Registers an async handler (as [`DispatcherBuilder::on`](crate::DispatcherBuilder::on)).
    #[must_use]
    pub fn on<F, Fut, E>(mut self, event_type: &str, handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.handlers
            .insert(event_type.to_owned(), Handler::from_async(handler));
        self
    }

    /// Registers an async handler of `data.object` deserialised into `T`.
    #[must_use]
    pub fn on_object<T, F, Fut, E>(mut self, event_type: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.handlers
            .insert(event_type.to_owned(), Handler::from_object(handler));
        self
    }

    /// Registers a blocking handler, run on Tokio's blocking pool (to its
    /// end: a thread cannot be cancelled; the lease is extended meanwhile).
    #[must_use]
    pub fn on_blocking<F, E>(mut self, event_type: &str, handler: F) -> Self
    where
        F: Fn(&WebhookEvent) -> Result<(), E> + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.handlers
            .insert(event_type.to_owned(), Handler::from_blocking(handler));
        self
    }

    /// Registers a handler that takes part in the inbox's SQL transaction:
    /// its writes (through [`Tx`]) and the event's move to `done` commit
    /// together, and a failure rolls both back — effectively once for
    /// database side effects, across crashes.
    ///
    /// ```no_run
    /// # fn f(b: plugipay_webhook_dispatch::inbox::InboxBuilder) -> plugipay_webhook_dispatch::inbox::InboxBuilder {
    /// use plugipay_webhook_dispatch::inbox::SqlValue;
    /// b.on_tx("plugipay.invoice.paid.v1", |tx, event| Box::pin(async move {
    ///     let total = event.object()["total"].as_i64().unwrap_or(0);
    ///     tx.execute(
    ///         "INSERT INTO ledger (event_id, amount) VALUES ($1, $2)",
    ///         &[SqlValue::from(event.id()), SqlValue::from(total)],
    ///     ).await?;
    ///     Ok(())
    /// }))
    /// # }
    /// ```
    #[must_use]
    pub fn on_tx<F>(mut self, event_type: &str, handler: F) -> Self
    where
        F: for<'a> Fn(&'a mut Tx<'_>, WebhookEvent) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        self.handlers.insert(
            event_type.to_owned(),
            Handler::Transactional(Arc::new(handler)),
        );
        self
    }

    /// A worker's lease on a claimed event (default 60 s): how long a dead
    /// worker keeps it from the others.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.options.lease = lease.min(MAX_DURATION);
        self
    }

    /// How long an async or transactional handler may run (default 30 s,
    /// shorter than the lease).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.options.handler_timeout = timeout.min(MAX_DURATION);
        self
    }

    /// Attempts before an event is dead (default 10).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = attempts.max(1);
        self
    }

    /// The first backoff after a failure (default 1 s); doubled after each
    /// failure up to `retry_max` (default 1 h), each drawn with full jitter.
    #[must_use]
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.options.retry_base = base.min(MAX_DURATION);
        self.options.retry_max = max.min(MAX_DURATION).max(self.options.retry_base);
        self
    }

    /// How often idle workers look for due events without a notification
    /// (default 1 s; PostgreSQL wakes them at once through LISTEN/NOTIFY).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.options.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Calls `observe(id, type, processed)` after each event a worker
    /// processed (once its state is committed): to log, to count, to print.
    #[must_use]
    pub fn observe(
        mut self,
        observe: impl Fn(&str, &str, Processed) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observe));
        self
    }

    /// Checks the configuration and builds the inbox.
    pub fn build(self) -> Result<Inbox, ConfigError> {
        if self.options.handler_timeout >= self.options.lease {
            return Err(ConfigError::new(format!(
                "handler timeout ({:?}) must be shorter than the lease ({:?})",
                self.options.handler_timeout, self.options.lease
            )));
        }
        if !self.backend.transactional() {
            if let Some(t) = self
                .handlers
                .iter()
                .find_map(|(t, h)| matches!(h, Handler::Transactional(_)).then_some(t))
            {
                return Err(ConfigError::new(format!(
                    "the {} inbox is not transactional: register {t:?} with on/on_object \
                     (and make it idempotent), or use the PostgreSQL or SQLite inbox for on_tx",
                    self.backend.kind()
                )));
            }
        }
        for (a, b) in crate::dispatcher::version_conflicts(self.handlers.keys().map(String::as_str))
        {
            tracing::warn!(
                "inbox handlers are registered for both {a} and {b}: during a deprecation window \
                 Plugipay emits both for one occurrence"
            );
        }
        Ok(Inbox {
            inner: Arc::new(Inner {
                backend: self.backend,
                handlers: self.handlers,
                options: self.options,
                wake: tokio::sync::Notify::new(),
                observer: self.observer,
            }),
        })
    }
}

impl Inbox {
    /// A builder over `backend` ([`SqliteInbox`], [`PostgresInbox`], `RedisInbox`, or
    /// [`inbox_from_url`]'s).
    pub fn builder(backend: impl Into<InboxBackend>) -> InboxBuilder {
        InboxBuilder {
            backend: backend.into().0,
            handlers: HashMap::new(),
            options: Options {
                lease: DEFAULT_INBOX_LEASE,
                handler_timeout: Duration::from_secs(30),
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                retry_base: DEFAULT_RETRY_BASE,
                retry_max: DEFAULT_RETRY_MAX,
                poll_interval: Duration::from_secs(1),
            },
            observer: None,
        }
    }

    /// Stores a verified delivery: [`Outcome::Stored`] once the row is
    /// committed (a duplicate adds nothing; a redelivery of a dead event
    /// makes it pending again with its attempts reset), or
    /// [`Outcome::StoreUnavailable`]. The event's
    /// [`signature_header`](WebhookEvent::signature_header) (set by every
    /// adapter) is kept as tamper evidence.
    pub async fn receive(&self, event: &WebhookEvent) -> Outcome {
        let signature = event.signature_header().unwrap_or_default();
        let state = if self.inner.handlers.contains_key(event.event_type()) {
            State::Pending
        } else {
            State::Skipped
        };
        let new = NewEvent {
            id: event.id().to_owned(),
            event_type: event.event_type().to_owned(),
            body: event.raw_body().clone(),
            signature: signature.to_owned(),
            matched_secret: i64::try_from(event.matched_secret()).unwrap_or(i64::MAX),
            account_id: event.account_id().map(str::to_owned),
            occurred_at: event.occurred_at().map(str::to_owned),
            state,
        };
        let started = std::time::Instant::now();
        let outcome = match self.inner.backend.insert(&new).await {
            Ok(inserted) => {
                if inserted != Inserted::Duplicate && state == State::Pending {
                    // One idle worker is enough for one event (waking them
                    // all would send every one of them to claim it).
                    self.inner.wake.notify_one();
                }
                tracing::debug!(
                    id = event.id(),
                    event_type = event.event_type(),
                    ?inserted,
                    "plugipay event stored"
                );
                Outcome::Stored
            }
            Err(e) => {
                tracing::warn!(error = %e, "plugipay event not stored: inbox unavailable");
                Outcome::StoreUnavailable
            }
        };
        metrics::counter!("plugipay_webhook_inbox_received_total", "outcome" => outcome.as_str())
            .increment(1);
        metrics::histogram!("plugipay_webhook_inbox_ack_seconds")
            .record(started.elapsed().as_secs_f64());
        event.span().record("dispatch", outcome.as_str());
        outcome
    }

    /// Starts `n` workers in this process (on the current Tokio runtime).
    #[must_use]
    pub fn start_workers(&self, n: usize) -> Workers {
        Workers::start(self.inner.clone(), n.max(1))
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
        self.inner.backend.list(state, event_type, limit).await
    }

    /// The stored records of one event id (one per type).
    pub async fn get(&self, id: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.backend.get(id).await
    }

    /// Moves dead and/or skipped events (or one event) back to pending with
    /// their attempts reset; the number moved.
    pub async fn retry(&self, filter: &RetryFilter) -> Result<u64, StoreError> {
        let n = self.inner.backend.retry(filter).await?;
        if n > 0 {
            self.inner.wake.notify_waiters();
        }
        Ok(n)
    }

    /// Deletes done and skipped events last changed more than `older_than`
    /// ago (never pending, running or dead ones); the number deleted.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        self.inner.backend.prune(older_than).await
    }

    /// Runs SQL statements on the inbox's database — to create, at start-up,
    /// the tables your transactional handlers write to.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.inner.backend.execute(sql).await
    }

    /// Whether the inbox answers now (for a health endpoint).
    pub async fn health(&self) -> Result<(), StoreError> {
        self.inner.backend.stats().await.map(drop)
    }
}

/// The storage behind an [`Inbox`]: a [`SqliteInbox`], a [`PostgresInbox`] or a `RedisInbox`
/// (`Into<InboxBackend>`), or one named by a URL ([`inbox_from_url`]).
#[derive(Clone)]
pub struct InboxBackend(Arc<dyn Backend>);

impl InboxBackend {
    /// Whether handlers can write in the inbox's own transaction
    /// ([`InboxBuilder::on_tx`]): SQLite and PostgreSQL, not Redis.
    #[must_use]
    pub fn is_transactional(&self) -> bool {
        self.0.transactional()
    }

    /// `sqlite`, `postgres` or `redis`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

impl fmt::Debug for InboxBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InboxBackend").field(&self.0.kind()).finish()
    }
}

#[cfg(feature = "sqlite")]
impl From<SqliteInbox> for InboxBackend {
    fn from(b: SqliteInbox) -> Self {
        InboxBackend(Arc::new(b))
    }
}

#[cfg(feature = "postgres")]
impl From<PostgresInbox> for InboxBackend {
    fn from(b: PostgresInbox) -> Self {
        InboxBackend(Arc::new(b))
    }
}

#[cfg(feature = "redis")]
impl From<RedisInbox> for InboxBackend {
    fn from(b: RedisInbox) -> Self {
        InboxBackend(Arc::new(b))
    }
}

/// Opens the inbox a URL names: `sqlite://PATH`, `postgres://…` or
/// `redis://…` (each store call bounded by [`DEFAULT_STORE_TIMEOUT`]);
/// tables (or the stream and its consumer group) are created on first use.
pub async fn inbox_from_url(url: &str) -> Result<InboxBackend, StoreError> {
    let url = url.trim();
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            Ok(SqliteInbox::open(path)?.into())
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(PostgresInbox::connect(url).await?.into()),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(RedisInbox::connect(url).await?.into()),
        other => Err(StoreError::new(format!(
            "unknown inbox {other:?}: use sqlite://PATH, postgres://… or redis://… (timeout {DEFAULT_STORE_TIMEOUT:?} per call)"
        ))),
    }
}
