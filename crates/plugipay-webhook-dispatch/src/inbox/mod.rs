//! The durable inbox: store every verified delivery, acknowledge once it is
//! stored, process it with retries on workers — transactionally on SQL.
//!
//! The state machine (one table of transitions, [`State`]'s) is the same on
//! every backend; each backend stores one transition at a time, atomically
//! with its owner check (the table and the faults: `docs/inbox.md`).

mod backend;
mod backoff;
mod machine;
mod order;
mod progress;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod state;
#[cfg(feature = "otel")]
mod trace;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod transactional;
mod types;
mod worker;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use serde::de::DeserializeOwned;

use crate::error::{BoxFuture, ConfigError, HandlerError, StoreError, MAX_DURATION};
pub use crate::handlers::DEFAULT_HANDLER;
use crate::handlers::{Handler, Handlers};
use crate::outcome::Outcome;
use backend::{Backend, Inserted, NewEvent};

pub use crate::attempt::{current_attempt, is_stale};
pub use crate::tx::{SqlValue, Tx};
#[cfg(feature = "postgres")]
pub use backend::postgres::{PostgresInbox, PostgresInboxBuilder, DEFAULT_POSTGRES_CONNECTIONS};
#[cfg(feature = "redis")]
pub use backend::redis::{RedisInbox, RedisInboxBuilder, DEFAULT_INBOX_PREFIX};
#[cfg(feature = "sqlite")]
pub use backend::sqlite::{SqliteInbox, SqliteInboxBuilder};
pub use machine::State;
pub use order::{occurred_at_ms, OrderKey, Stale, OCCURRED_AT_SLACK};
pub use progress::{HISTORY_ERROR_LEN, HISTORY_LEN};
pub use state::DeadLetter;
pub use types::{
    Activity, AttemptOutcome, AttemptRecord, Count, Cursor, FailingType, HandlerState,
    HandlerStatus, ListFilter, Page, Processed, ProcessedEvent, PruneFilter, Record, RetryFilter,
    Stats, DEFAULT_INBOX_HANDLER_TIMEOUT, DEFAULT_INBOX_LEASE, DEFAULT_INBOX_TABLE,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX, MAX_EXAMINED, MIN_PRUNE_AGE,
};
pub use worker::Workers;

use state::{DeadAlert, DetailedObserver, Inner, Observer, Options};

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
/// let inbox = Inbox::builder(SqliteInbox::open("inbox.sqlite3").await?)
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
        f.debug_struct("Inbox")
            .field("backend", &self.inner.backend.kind())
            .field("types", &self.inner.handlers.types())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Builds an [`Inbox`]: the same handler registration as the dispatcher's,
/// plus transactional handlers.
pub struct InboxBuilder {
    backend: Arc<dyn Backend>,
    handlers: Handlers,
    options: Options,
    handler_timeout: Option<Duration>,
    observer: Option<Observer>,
    detailed: Option<DetailedObserver>,
    on_dead: Option<DeadAlert>,
    limits: std::collections::HashMap<String, usize>,
    tenants: Vec<String>,
}

/// Which type a handler is registered for, and its name: a type alone
/// (`"plugipay.invoice.paid.v1"`) is the handler named
/// [`DEFAULT_HANDLER`]; a pair (`("plugipay.invoice.paid.v1", "ledger")`)
/// names it. Several named handlers of one type each keep their own
/// state, attempts and history for every event.
#[derive(Debug, Clone, Copy)]
pub struct HandlerKey<'a> {
    /// The event type.
    pub event_type: &'a str,
    /// The handler's name.
    pub name: &'a str,
}

impl<'a> From<&'a str> for HandlerKey<'a> {
    fn from(event_type: &'a str) -> Self {
        HandlerKey {
            event_type,
            name: DEFAULT_HANDLER,
        }
    }
}

impl<'a> From<&'a String> for HandlerKey<'a> {
    fn from(event_type: &'a String) -> Self {
        HandlerKey::from(event_type.as_str())
    }
}

impl<'a> From<(&'a str, &'a str)> for HandlerKey<'a> {
    fn from((event_type, name): (&'a str, &'a str)) -> Self {
        HandlerKey { event_type, name }
    }
}

impl fmt::Debug for InboxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxBuilder")
            .field("backend", &self.backend.kind())
            .field("types", &self.handlers.types())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl InboxBuilder {
    /// Registers an async handler (as [`DispatcherBuilder::on`](crate::DispatcherBuilder::on)).
    #[must_use]
    pub fn on<'k, F, Fut, E>(mut self, key: impl Into<HandlerKey<'k>>, handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.add(key.into(), Handler::from_async(handler));
        self
    }

    /// Registers an async handler of `data.object` deserialised into `T`.
    #[must_use]
    pub fn on_object<'k, T, F, Fut, E>(mut self, key: impl Into<HandlerKey<'k>>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.add(key.into(), Handler::from_object(handler));
        self
    }

    /// Registers a blocking handler, run on Tokio's blocking pool (to its
    /// end: a thread cannot be cancelled; the lease is extended meanwhile,
    /// and its result discarded if the lease was lost).
    #[must_use]
    pub fn on_blocking<'k, F, E>(mut self, key: impl Into<HandlerKey<'k>>, handler: F) -> Self
    where
        F: Fn(&WebhookEvent) -> Result<(), E> + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.add(key.into(), Handler::from_blocking(handler));
        self
    }

    /// Registers a handler that takes part in the inbox's SQL transaction:
    /// its writes (through [`Tx`]) and the event's move to `done` commit
    /// together, and a failure rolls both back — effectively once for
    /// database side effects, across crashes. `Done` is reported only once
    /// the commit is confirmed.
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
    pub fn on_tx<'k, F>(mut self, key: impl Into<HandlerKey<'k>>, handler: F) -> Self
    where
        F: for<'a> Fn(&'a mut Tx<'_>, WebhookEvent) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        self.add(key.into(), Handler::Transactional(Arc::new(handler)));
        self
    }

    /// Registers a transactional handler (as [`on_tx`](InboxBuilder::on_tx))
    /// of `data.object` deserialised into `T` from the verified bytes. A
    /// body that does not fit `T` is a failure of this handler (retried,
    /// then dead) whose error names the field's path — never a panic.
    ///
    /// ```no_run
    /// # fn f(b: plugipay_webhook_dispatch::inbox::InboxBuilder) -> plugipay_webhook_dispatch::inbox::InboxBuilder {
    /// use plugipay_webhook_dispatch::inbox::SqlValue;
    /// #[derive(serde::Deserialize)]
    /// struct Invoice { id: String, total: i64 }
    /// b.on_tx_object(("plugipay.invoice.paid.v1", "ledger"), |tx, invoice: Invoice, _event| {
    ///     Box::pin(async move {
    ///         tx.execute(
    ///             "INSERT INTO ledger (invoice, amount) VALUES ($1, $2)",
    ///             &[SqlValue::from(invoice.id.as_str()), SqlValue::from(invoice.total)],
    ///         ).await?;
    ///         Ok(())
    ///     })
    /// })
    /// # }
    /// ```
    #[must_use]
    pub fn on_tx_object<'k, T, F>(mut self, key: impl Into<HandlerKey<'k>>, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: for<'a> Fn(&'a mut Tx<'_>, T, WebhookEvent) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        self.add(key.into(), Handler::from_tx_object(handler));
        self
    }

    fn add(&mut self, key: HandlerKey<'_>, handler: Handler) {
        self.handlers.add(key.event_type, key.name, handler);
    }

    /// Calls `alert` once each time an (event, handler) pair becomes dead —
    /// its last attempt failed, or its attempts ran out while its worker
    /// was gone — never on a retry. It runs on the worker after the state
    /// is stored, under the handler timeout (a panic or a timeout is
    /// logged); an alert cut short by a crash is not repeated. The metric
    /// `plugipay_webhook_inbox_dead_total{event_type, handler}` counts the
    /// same.
    ///
    /// ```no_run
    /// # fn f(b: plugipay_webhook_dispatch::inbox::InboxBuilder) -> plugipay_webhook_dispatch::inbox::InboxBuilder {
    /// b.on_dead(|dead| async move {
    ///     eprintln!("page: {} {} {} after {} attempts: {}",
    ///         dead.id, dead.event_type, dead.handler, dead.attempts, dead.error);
    /// })
    /// # }
    /// ```
    #[must_use]
    pub fn on_dead<F, Fut>(mut self, alert: F) -> Self
    where
        F: Fn(DeadLetter) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_dead = Some(Arc::new(move |dead| Box::pin(alert(dead))));
        self
    }

    /// At most `limit` runs of the handler named `name` (of any type) in
    /// flight in this process (at least 1). A worker that finds it at its
    /// limit does not wait for it: it runs the event's other handlers and
    /// leaves that one due again shortly, without counting an attempt — so
    /// a slow or capped handler never holds the workers the others need.
    #[must_use]
    pub fn concurrency(mut self, name: &str, limit: usize) -> Self {
        self.limits.insert(name.to_owned(), limit.max(1));
        self
    }

    /// A worker's lease on a claimed event (default 60 s): how long a dead
    /// worker keeps it from the others.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.options.lease = lease.min(MAX_DURATION);
        self
    }

    /// How long a handler may run (default 30 s, or half the lease when that
    /// is shorter; it must be shorter than the lease). On SQLite a
    /// transactional handler's default is half the store timeout,
    /// and a longer one is refused at [`build`](InboxBuilder::build): it
    /// holds the database's write lock, which deliveries wait for).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout.min(MAX_DURATION));
        self
    }

    /// Attempts before an event is dead (default 10). A claim that finds
    /// them exhausted — the last attempt never finished, its worker crashed
    /// or was killed — makes the event dead instead of running it again.
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
    /// (default 1 s; PostgreSQL and Redis wake them at once on a new event,
    /// and a worker that scheduled a retry wakes for it when it is due).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.options.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Calls `observe(id, type, processed)` after each event a worker
    /// processed (once its state is committed): to log, to count, to print.
    /// [`Processed::Done`] is reported only for committed work.
    #[must_use]
    pub fn observe(
        mut self,
        observe: impl Fn(&str, &str, Processed) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observe));
        self
    }

    /// Calls `observe` with everything about each processed event — its
    /// tenant, the attempt, the error, how long it took — once its state is
    /// committed.
    #[must_use]
    pub fn on_processed(
        mut self,
        observe: impl Fn(&ProcessedEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.detailed = Some(Arc::new(observe));
        self
    }

    /// Orders events per key: events of one key (by default
    /// [`OrderKey::object`], the tenant and `data.object.id`) run one at a
    /// time across every worker and process, in the order they happened —
    /// the earliest `occurred_at` among the key's stored events first (ties
    /// and missing or unparsable timestamps in arrival order, never stale).
    /// An event that comes up older than the newest one already done for
    /// its key is *stale* (see [`on_stale`](InboxBuilder::on_stale)). A
    /// failing event holds back the later events of its key — not other
    /// keys — until it is done or dead. Events without a key run as usual.
    ///
    /// On the SQL inboxes; the Redis inbox refuses it at
    /// [`build`](InboxBuilder::build). Whether an event is ordered is
    /// decided when it is stored.
    #[must_use]
    pub fn order_by(mut self, key: OrderKey) -> Self {
        self.options.order = Some(key);
        self
    }

    /// Ordering: a new event becomes due only once it has been stored for
    /// `window` (default zero), so that a burst delivered out of order is
    /// sorted before anything of it runs — at the cost of `window` of
    /// latency on every ordered event.
    #[must_use]
    pub fn reorder_window(mut self, window: Duration) -> Self {
        self.options.reorder_window = window.min(MAX_DURATION);
        self
    }

    /// Ordering: what becomes of a stale event ([`Stale::Skip`], the
    /// default: recorded as `stale`, not handed over; [`Stale::Deliver`]:
    /// handed over with [`is_stale`] answering `true`).
    #[must_use]
    pub fn on_stale(mut self, stale: Stale) -> Self {
        self.options.stale = stale;
        self
    }

    /// Ordering: a dead event keeps holding its key — the later events of
    /// the key wait until it is retried (`inbox retry`) — instead of
    /// releasing it (the default: a dead event is set aside and the key
    /// moves on).
    #[must_use]
    pub fn dead_holds_key(mut self, hold: bool) -> Self {
        self.options.dead_holds_key = hold;
        self
    }

    /// The tenants the metrics name in their `tenant` label (the names of
    /// `PLUGIPAY_TENANT_SECRETS`, say); any other tenant is counted as
    /// `other`, a delivery without one with an empty label — so a flood of
    /// made-up tenant names cannot grow the metrics.
    #[must_use]
    pub fn tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the configuration and builds the inbox.
    pub fn build(mut self) -> Result<Inbox, ConfigError> {
        let tx_type = self.handlers.transactional_type().map(str::to_owned);
        if self.options.order.is_some() && !self.backend.can_order() {
            return Err(ConfigError::new(format!(
                "the {} inbox cannot order events per key (order_by): use the PostgreSQL or \
                 SQLite inbox for ordering",
                self.backend.kind()
            )));
        }
        // Unset: 30 s, or half the lease when that is shorter.
        let default_timeout = DEFAULT_INBOX_HANDLER_TIMEOUT.min(self.options.lease / 2);
        if let Some(t) = &tx_type {
            if self.backend.execute("").is_none() {
                return Err(ConfigError::new(format!(
                    "the {} inbox is not transactional: register {t:?} with on/on_object \
                     (and make it idempotent), or use the PostgreSQL or SQLite inbox for on_tx",
                    self.backend.kind()
                )));
            }
        }
        self.options.handler_timeout = match (
            self.backend.lock_timeout(),
            &tx_type,
            self.handler_timeout,
        ) {
            (Some(lock), Some(t), Some(set)) if set >= lock => {
                return Err(ConfigError::new(format!(
                    "on SQLite a transactional handler ({t:?}) holds the database's write lock, and \
                     deliveries wait for it at most SQLite's busy timeout ({lock:?}; the store \
                     timeout, or the busy_timeout of the pool given to from_pool): its timeout \
                     ({set:?}) must be shorter — lower handler_timeout, or raise the store timeout \
                     (SqliteInbox::open_with)"
                )));
            }
            (Some(lock), Some(_), None) => (lock / 2).min(default_timeout),
            (_, _, set) => set.unwrap_or(default_timeout),
        };
        if self.options.handler_timeout >= self.options.lease {
            return Err(ConfigError::new(format!(
                "handler timeout ({:?}) must be shorter than the lease ({:?})",
                self.options.handler_timeout, self.options.lease
            )));
        }
        for (a, b) in self.handlers.version_conflicts() {
            tracing::warn!(
                "inbox handlers are registered for both {a} and {b}: during a deprecation window \
                 Plugipay emits both for one occurrence"
            );
        }
        let labels = crate::labels::Labels::new(self.handlers.types(), self.tenants);
        Ok(Inbox {
            inner: Arc::new(Inner {
                backend: self.backend,
                handlers: self.handlers,
                options: self.options,
                wake: tokio::sync::Notify::new(),
                observer: self.observer,
                detailed: self.detailed,
                on_dead: self.on_dead,
                limits: self
                    .limits
                    .into_iter()
                    .map(|(name, n)| (name, Arc::new(tokio::sync::Semaphore::new(n))))
                    .collect(),
                tenancy: crate::tenancy::Tenancy::default(),
                outage: crate::outage::Outage::new("inbox"),
                labels,
            }),
        })
    }
}

impl Inbox {
    /// A builder over `backend` (`SqliteInbox`, `PostgresInbox`, `RedisInbox`, or
    /// [`inbox_from_url`]'s).
    pub fn builder(backend: impl Into<InboxBackend>) -> InboxBuilder {
        InboxBuilder {
            backend: backend.into().0,
            handlers: Handlers::default(),
            options: Options {
                lease: DEFAULT_INBOX_LEASE,
                handler_timeout: DEFAULT_INBOX_HANDLER_TIMEOUT,
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                retry_base: DEFAULT_RETRY_BASE,
                retry_max: DEFAULT_RETRY_MAX,
                poll_interval: Duration::from_secs(1),
                order: None,
                reorder_window: Duration::ZERO,
                stale: Stale::Skip,
                dead_holds_key: false,
            },
            handler_timeout: None,
            observer: None,
            detailed: None,
            on_dead: None,
            limits: std::collections::HashMap::new(),
            tenants: Vec::new(),
        }
    }

    /// Stores a verified delivery: [`Outcome::Stored`] once the row is
    /// committed (a duplicate adds nothing; a redelivery of a dead event
    /// makes it pending again with its attempts reset), or
    /// [`Outcome::StoreUnavailable`]. The event's
    /// [`signature_header`](WebhookEvent::signature_header) (set by every
    /// adapter) is kept as tamper evidence, and its
    /// [`tenant`](WebhookEvent::tenant) is part of its key.
    pub async fn receive(&self, event: &WebhookEvent) -> Outcome {
        self.inner.tenancy.check(event);
        let state = if self.inner.handlers.contains(event.event_type()) {
            State::Pending
        } else {
            State::Skipped
        };
        let order_key = self.inner.options.order.as_ref().and_then(|k| k.of(event));
        let object_id = order::object_id(event);
        let extra = [
            ("data.object.id", object_id.as_deref()),
            ("ordering key", order_key.as_deref()),
        ];
        if let Some(field) = crate::outcome::nul_field(event, &extra) {
            tracing::warn!(
                id = crate::text::printable(event.id()).as_ref(),
                field,
                "plugipay event refused: its {field} holds U+0000, which the inbox cannot keep as text (400 nul_in_text)"
            );
            metrics::counter!(
                "plugipay_webhook_inbox_received_total",
                "outcome" => Outcome::Unstorable.as_str(),
                "event_type" => self.inner.labels.event_type(event.event_type()),
                "tenant" => self.inner.labels.tenant(event.tenant())
            )
            .increment(1);
            event
                .span()
                .record("dispatch", Outcome::Unstorable.as_str());
            return Outcome::Unstorable;
        }
        let due_in_ms = if order_key.is_some() {
            crate::error::millis(self.inner.options.reorder_window)
        } else {
            0
        };
        let new = NewEvent {
            occurred_ms: event
                .occurred_at()
                .and_then(order::occurred_at_ms)
                .map(order::clamp_occurred_ms),
            object_id,
            order_key,
            due_in_ms,
            tenant: event.tenant().unwrap_or_default().to_owned(),
            id: event.id().to_owned(),
            event_type: event.event_type().to_owned(),
            body: event.raw_body().clone(),
            signature: event.signature_header().unwrap_or_default().to_owned(),
            matched_secret: i64::try_from(event.matched_secret()).unwrap_or(i64::MAX),
            account_id: event.account_id().map(str::to_owned),
            occurred_at: event.occurred_at().map(str::to_owned),
            state,
            trace: trace_of(event),
        };
        let started = std::time::Instant::now();
        let (id, event_type, tenant) = (event.id(), event.event_type(), event.tenant());
        // The metric tells a duplicate and a revival from a new event; the
        // sender is answered 202 for each.
        let (outcome, received) = match self.inner.backend.insert(&new).await {
            Ok(inserted) => {
                self.inner.outage.succeeded();
                if inserted != Inserted::Duplicate && state == State::Pending {
                    // One idle worker is enough for one event (waking them
                    // all would send every one of them to claim it).
                    self.inner.wake.notify_one();
                }
                match (inserted, state) {
                    (Inserted::New, State::Skipped) => {
                        // Stored and settled at once: no worker will see it.
                        tracing::info!(id, event_type, tenant, "plugipay event stored");
                        tracing::info!(
                            id, event_type, tenant,
                            "plugipay event skipped (no handler for its type; `inbox retry --skipped` once one is deployed)"
                        );
                        metrics::counter!(
                            "plugipay_webhook_inbox_processed_total",
                            "outcome" => Processed::Skipped.as_str(),
                            "event_type" => self.inner.labels.event_type(event_type),
                            "tenant" => self.inner.labels.tenant(tenant)
                        )
                        .increment(1);
                    }
                    (Inserted::New, _) => tracing::info!(id, event_type, tenant, "plugipay event stored"),
                    (Inserted::Duplicate, _) => {
                        tracing::info!(id, event_type, tenant, "plugipay event duplicate (stored before; nothing changed)");
                    }
                    (Inserted::Revived, _) => tracing::info!(
                        id, event_type, tenant,
                        "plugipay event revived (a redelivery of a dead event: pending again, attempts reset)"
                    ),
                }
                let received = match inserted {
                    Inserted::New => "stored",
                    Inserted::Duplicate => "duplicate",
                    Inserted::Revived => "revived",
                };
                (Outcome::Stored, received)
            }
            Err(e) => {
                tracing::debug!(error = %e, id, event_type, tenant, "plugipay event not stored: inbox unavailable");
                self.inner.outage.failed(&e, true);
                (
                    Outcome::StoreUnavailable,
                    Outcome::StoreUnavailable.as_str(),
                )
            }
        };
        let labels = &self.inner.labels;
        metrics::counter!(
            "plugipay_webhook_inbox_received_total",
            "outcome" => received,
            "event_type" => labels.event_type(event_type),
            "tenant" => labels.tenant(tenant)
        )
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
        Ok(types::failing_types(rows, top))
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

/// The storage behind an [`Inbox`]: a `SqliteInbox`, a `PostgresInbox` or a `RedisInbox`
/// (`Into<InboxBackend>`), or one named by a URL ([`inbox_from_url`]).
#[derive(Clone)]
pub struct InboxBackend(Arc<dyn Backend>);

impl InboxBackend {
    /// Whether handlers can write in the inbox's own transaction
    /// ([`InboxBuilder::on_tx`]): SQLite and PostgreSQL, not Redis.
    #[must_use]
    pub fn is_transactional(&self) -> bool {
        self.0.execute("").is_some()
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
/// `redis://…` (each store call bounded by
/// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT)); the table (or
/// the keys) are created on first use, or an earlier release's brought
/// forward.
pub async fn inbox_from_url(url: &str) -> Result<InboxBackend, StoreError> {
    open_url(url, true).await
}

/// Opens an inbox that must exist already (the read-only tools): on SQLite
/// a missing file is an error instead of a new, empty inbox.
pub async fn existing_inbox_from_url(url: &str) -> Result<InboxBackend, StoreError> {
    open_url(url, false).await
}

async fn open_url(url: &str, create: bool) -> Result<InboxBackend, StoreError> {
    use crate::url::Target;
    let _ = create;
    match Target::parse(url, "inbox")? {
        #[cfg(feature = "sqlite")]
        Target::Sqlite(path) => Ok(SqliteInbox::builder(path)
            .create(create)
            .open()
            .await?
            .into()),
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => Ok(PostgresInbox::connect(url).await?.into()),
        #[cfg(feature = "redis")]
        Target::Redis(url) => Ok(RedisInbox::connect(url).await?.into()),
        Target::Memory => Err(StoreError::new(
            "the inbox is durable: use sqlite://PATH, postgres://… or redis://…, not memory:",
        )),
        #[allow(unreachable_patterns)]
        other => Err(other.missing_feature("inbox")),
    }
}

/// The transition table, as `docs/inbox.md` shows it.
#[doc(hidden)]
#[must_use]
pub fn transition_table() -> String {
    machine::table_markdown()
}

/// The receiving request's trace context: the delivery's span (the
/// adapters open one), else the current span.
#[cfg(feature = "otel")]
fn trace_of(event: &WebhookEvent) -> Option<String> {
    trace::capture(event.span()).or_else(|| trace::capture(&tracing::Span::current()))
}

/// Without the `otel` feature no trace context is stored.
#[cfg(not(feature = "otel"))]
fn trace_of(_event: &WebhookEvent) -> Option<String> {
    None
}
