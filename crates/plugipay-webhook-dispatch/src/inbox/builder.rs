//! Building an [`Inbox`]: handlers (plain, blocking, transactional, typed;
//! several per type, by name), alerts, observers, limits, ordering and the
//! timing options, checked by [`build`](InboxBuilder::build).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use serde::de::DeserializeOwned;

use super::backend::Backend;
use super::order::{OrderKey, Stale};
use super::state::{
    DeadAlert, DeadLetter, DetailedObserver, Inbox, InboxBackend, Inner, Observer, Options,
};
use super::types::{
    Processed, ProcessedEvent, DEFAULT_INBOX_HANDLER_TIMEOUT, DEFAULT_INBOX_LEASE,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX,
};
use crate::error::{BoxFuture, ConfigError, HandlerError, MAX_DURATION};
use crate::handlers::{Handler, Handlers, DEFAULT_HANDLER};
use crate::tx::Tx;

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
    /// handed over with [`is_stale`](super::is_stale) answering `true`).
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
    /// [`inbox_from_url`](super::inbox_from_url)'s).
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
}
