//! The typed dispatcher: inline, de-duplicated handling of each delivery.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::dedup::{Claim, DedupStore, EventKey};
use crate::error::HandlerError;
use crate::error::{ConfigError, MAX_DURATION};
use crate::handlers::{blocking_result, run_async, Handler, Handlers};
use crate::outcome::Outcome;
use crate::token::ClaimToken;

/// Default lease of a claim: 60 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Default handler timeout: 30 s (always shorter than the lease).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default retention of done records: 7 days, longer than Plugipay's retry horizon.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Builds a [`Dispatcher`].
pub struct DispatcherBuilder {
    store: Arc<dyn DedupStore>,
    handlers: Handlers,
    lease: Duration,
    handler_timeout: Duration,
    retention: Duration,
    tenants: Vec<String>,
}

impl fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types = self.handlers.types();
        f.debug_struct("DispatcherBuilder")
            .field("store", &self.store.kind())
            .field("types", &types)
            .field("lease", &self.lease)
            .field("handler_timeout", &self.handler_timeout)
            .field("retention", &self.retention)
            .finish()
    }
}

impl DispatcherBuilder {
    /// The claim's lease (default 60 s): how long a crashed receiver keeps an
    /// event from being handled elsewhere. At most [`MAX_DURATION`] (100
    /// years); longer values are clamped to it.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a handler may run (default 30 s). Must be shorter than the
    /// lease, so a slow handler cannot outlive its claim and run twice. An
    /// async handler is cancelled at the timeout; a blocking one cannot be
    /// (a thread is not interruptible), so its claim is kept — extended every
    /// third of the lease — until it returns, and then marked done or
    /// released by what it returned. Longer than [`MAX_DURATION`] is clamped.
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long done records are kept (default 7 days). `Duration::MAX`
    /// means forever: durations are clamped to [`MAX_DURATION`] (100 years),
    /// so no store's clock arithmetic can overflow.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Registers an async handler for `event_type`.
    ///
    /// ```
    /// # use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
    /// let dispatcher = Dispatcher::builder(MemoryStore::new())
    ///     .on("plugipay.invoice.paid.v1", |event| async move {
    ///         println!("invoice {} paid", event.object()["id"]);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    #[must_use]
    pub fn on<F, Fut, E>(mut self, event_type: &str, handler: F) -> Self
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.handlers
            .insert(event_type, Handler::from_async(handler));
        self
    }

    /// Registers an async handler that receives `data.object` deserialised
    /// into `T` (straight from the verified bytes) and the event. An object
    /// that does not deserialise counts as a handler failure (500).
    ///
    /// ```
    /// # use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
    /// #[derive(serde::Deserialize)]
    /// struct Invoice { id: String, total: u64 }
    ///
    /// let dispatcher = Dispatcher::builder(MemoryStore::new())
    ///     .on_object("plugipay.invoice.paid.v1", |invoice: Invoice, _event| async move {
    ///         println!("{} paid {}", invoice.id, invoice.total);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    #[must_use]
    pub fn on_object<T, F, Fut, E>(mut self, event_type: &str, handler: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        self.handlers
            .insert(event_type, Handler::from_object(handler));
        self
    }

    /// Registers a blocking handler, run on Tokio's blocking pool.
    ///
    /// A thread cannot be cancelled: when one runs past the handler timeout
    /// the delivery is answered [`Outcome::HandlerFailed`], but the claim is
    /// kept (extended while the thread runs), so no redelivery runs the
    /// handler a second time at once; when the thread returns, the event is
    /// marked done or released according to its result.
    ///
    /// ```
    /// # use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
    /// let dispatcher = Dispatcher::builder(MemoryStore::new())
    ///     .on_blocking("plugipay.refund.succeeded.v1", |event| {
    ///         println!("refund {}", event.object()["id"]);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    #[must_use]
    pub fn on_blocking<F, E>(mut self, event_type: &str, handler: F) -> Self
    where
        F: Fn(&WebhookEvent) -> Result<(), E> + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.handlers
            .insert(event_type, Handler::from_blocking(handler));
        self
    }

    /// The tenants the metrics name in their `tenant` label (the names of
    /// `PLUGIPAY_TENANT_SECRETS`, say); any other tenant is counted as
    /// `other`, a delivery without one with an empty label.
    #[must_use]
    pub fn tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the configuration and builds the dispatcher. Warns (through
    /// `tracing`) when two versions of one event are both registered.
    pub fn build(mut self) -> Result<Dispatcher, ConfigError> {
        self.lease = self.lease.min(MAX_DURATION);
        self.handler_timeout = self.handler_timeout.min(MAX_DURATION);
        self.retention = self.retention.min(MAX_DURATION);
        if self.handler_timeout >= self.lease {
            return Err(ConfigError::new(format!(
                "handler timeout ({:?}) must be shorter than the lease ({:?}), or a slow handler could outlive its claim and run twice",
                self.handler_timeout, self.lease
            )));
        }
        if self.retention.is_zero() || self.lease.is_zero() {
            return Err(ConfigError::new(
                "lease and retention must be positive".into(),
            ));
        }
        let conflicts = self.handlers.version_conflicts();
        for (a, b) in &conflicts {
            tracing::warn!(
                "handlers are registered for both {a} and {b}: during a deprecation window Plugipay \
                 emits both for one occurrence, so that occurrence would be processed twice"
            );
        }
        let labels = crate::labels::Labels::new(self.handlers.types(), self.tenants);
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store: self.store,
                handlers: self.handlers,
                lease: self.lease,
                handler_timeout: self.handler_timeout,
                retention: self.retention,
                conflicts,
                tenancy: crate::tenancy::Tenancy::default(),
                outage: crate::outage::Outage::new("de-duplication store"),
                labels,
            }),
        })
    }
}

struct Inner {
    store: Arc<dyn DedupStore>,
    handlers: Handlers,
    lease: Duration,
    handler_timeout: Duration,
    retention: Duration,
    conflicts: Vec<(String, String)>,
    tenancy: crate::tenancy::Tenancy,
    outage: crate::outage::Outage,
    labels: crate::labels::Labels,
}

/// Runs the right handler for each verified event, at most once per
/// `(id, type)` across every process sharing the store.
///
/// The first delivery claims the event with a lease and runs the handler
/// under a timeout shorter than the lease; success marks it done, failure
/// (an error, a panic, the timeout) releases the claim so Plugipay's retry
/// runs it again. A concurrent duplicate gets [`Outcome::InProgress`], a later
/// one [`Outcome::Duplicate`]; a type without a handler is acknowledged
/// ([`Outcome::Unknown`]). Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore, Outcome};
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |_event| async { Ok::<_, std::io::Error>(()) })
///     .build()
///     .unwrap();
/// let event = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1")
///     .verify_with(&Verifier::new("whsec_test"))
///     .unwrap();
/// assert_eq!(dispatcher.dispatch(&event).await, Outcome::Handled);
/// assert_eq!(dispatcher.dispatch(&event).await, Outcome::Duplicate);
/// assert_eq!(dispatcher.dispatch(&event).await.status(), 204);
/// # }
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types = self.inner.handlers.types();
        f.debug_struct("Dispatcher")
            .field("store", &self.inner.store.kind())
            .field("types", &types)
            .field("lease", &self.inner.lease)
            .field("handler_timeout", &self.inner.handler_timeout)
            .field("retention", &self.inner.retention)
            .finish()
    }
}

impl Dispatcher {
    /// A builder over `store`.
    pub fn builder(store: impl DedupStore) -> DispatcherBuilder {
        Dispatcher::builder_shared(Arc::new(store))
    }

    /// A builder over a shared store.
    #[must_use]
    pub fn builder_shared(store: Arc<dyn DedupStore>) -> DispatcherBuilder {
        DispatcherBuilder {
            store,
            handlers: Handlers::default(),
            lease: DEFAULT_LEASE,
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            retention: DEFAULT_RETENTION,
            tenants: Vec::new(),
        }
    }

    /// Whether the de-duplication store answers now (for a health endpoint).
    pub async fn health(&self) -> Result<(), crate::error::StoreError> {
        self.inner.store.health().await
    }

    /// Registered pairs of two versions of one event (also logged at build).
    #[must_use]
    pub fn version_conflicts(&self) -> &[(String, String)] {
        &self.inner.conflicts
    }

    /// Handles one verified event. Never panics, whatever the handler does.
    ///
    /// Once the event is claimed, the handler runs on a task of its own:
    /// dropping this future (the client disconnected, the server cancelled
    /// the request) cannot cut the handler in half — it runs to its end and
    /// the event is marked done or released as if the answer had been sent.
    /// Needs a Tokio runtime (every supported framework runs on one).
    ///
    /// Runs inside the event's span ([`WebhookEvent::span`]: over HTTP, the
    /// delivery's), records the outcome in its `dispatch` field, and counts
    /// it in the `metrics` counter `plugipay_webhook_dispatch_total{outcome}`.
    pub async fn dispatch(&self, event: &WebhookEvent) -> Outcome {
        let span = event.span().clone();
        let outcome = self.dispatch_in_span(event).instrument(span.clone()).await;
        span.record("dispatch", outcome.as_str());
        let labels = &self.inner.labels;
        metrics::counter!(
            "plugipay_webhook_dispatch_total",
            "outcome" => outcome.as_str(),
            "event_type" => labels.event_type(event.event_type()),
            "tenant" => labels.tenant(event.tenant())
        )
        .increment(1);
        outcome
    }

    async fn dispatch_in_span(&self, event: &WebhookEvent) -> Outcome {
        let inner = &self.inner;
        inner.tenancy.check(event);
        let Some(handler) = inner.handlers.get(event.event_type()) else {
            tracing::info!(
                id = event.id(),
                event_type = event.event_type(),
                tenant = event.tenant(),
                "plugipay event unhandled (no handler for its type; acknowledged)"
            );
            return Outcome::Unknown;
        };
        if let Some(field) = crate::outcome::nul_field(event, &[]) {
            tracing::warn!(
                id = crate::text::printable(event.id()).as_ref(),
                field,
                "plugipay event refused: its {field} holds U+0000, which a store cannot keep as text (400 nul_in_text)"
            );
            return Outcome::Unstorable;
        }
        let key = EventKey::of(event);
        let claimed = inner.store.claim(&key, inner.lease).await;
        if claimed.is_ok() {
            inner.outage.succeeded();
        }
        let token = match claimed {
            Ok(Claim::Acquired(token)) => token,
            Ok(Claim::InProgress) => return Outcome::InProgress,
            Ok(Claim::Done) => return Outcome::Duplicate,
            Err(e) => {
                tracing::debug!(error = %e, store = inner.store.kind(), id = event.id(), "plugipay event not dispatched: store unavailable");
                inner.outage.failed(&e, true);
                return Outcome::StoreUnavailable;
            }
        };
        let claimed = Claimed {
            inner: self.inner.clone(),
            event: event.clone(),
            key,
            token,
        };
        let task = tokio::spawn(
            claimed
                .run(handler.clone())
                .instrument(tracing::Span::current()),
        );
        match task.await {
            Ok(outcome) => outcome,
            // Only a runtime shutting down cancels the task; nothing inside
            // it panics (handler panics are caught there).
            Err(e) => {
                tracing::error!(error = %e, id = event.id(), "plugipay handler task did not finish");
                Outcome::HandlerFailed
            }
        }
    }
}

/// A claimed event and what the dispatcher needs to finish it.
struct Claimed {
    inner: Arc<Inner>,
    event: WebhookEvent,
    key: EventKey,
    token: ClaimToken,
}

impl Claimed {
    /// Runs the handler under the timeout and marks the event done or
    /// releases the claim.
    async fn run(self, handler: Handler) -> Outcome {
        let timeout = self.inner.handler_timeout;
        let result = match handler {
            Handler::Async(handler) => run_async(&handler, self.event.clone(), timeout).await,
            #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
            Handler::Transactional(_) => {
                Err("a transactional handler needs an inbox's transaction".to_owned())
            }
            Handler::Blocking(handler) => {
                let event = self.event.clone();
                let mut thread = tokio::task::spawn_blocking(move || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&event)))
                });
                match tokio::time::timeout(timeout, &mut thread).await {
                    Ok(finished) => blocking_result(finished),
                    Err(_) => {
                        tracing::warn!(
                            id = self.event.id(),
                            event_type = self.event.event_type(),
                            "blocking handler timed out after {timeout:?}; its claim is kept until it returns"
                        );
                        tokio::spawn(
                            self.finish_late(thread)
                                .instrument(tracing::Span::current()),
                        );
                        return Outcome::HandlerFailed;
                    }
                }
            }
        };
        self.finish(result).await
    }

    /// Waits for a blocking handler that outlived its timeout, extending the
    /// claim every third of the lease, then finishes the event.
    async fn finish_late(
        self,
        mut thread: tokio::task::JoinHandle<std::thread::Result<Result<(), HandlerError>>>,
    ) {
        let lease = self.inner.lease;
        loop {
            match self.inner.store.extend(&self.key, &self.token, lease).await {
                Ok(true) => {}
                Ok(false) => tracing::error!(
                    id = self.event.id(),
                    "a blocking handler still running lost its claim: a redelivery may run it again"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, id = self.event.id(), "could not extend the claim of a blocking handler still running")
                }
            }
            if let Ok(finished) = tokio::time::timeout(lease / 3, &mut thread).await {
                self.finish(blocking_result(finished)).await;
                return;
            }
        }
    }

    /// Marks the event done, or releases the claim after a failure.
    async fn finish(self, result: Result<(), String>) -> Outcome {
        let inner = &self.inner;
        let (key, token, id) = (&self.key, &self.token, self.event.id());
        match result {
            Ok(()) => {
                match inner.store.complete(key, token, inner.retention).await {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(
                        id,
                        "plugipay event handled, but its claim had lapsed: another delivery may run it again"
                    ),
                    Err(e) => tracing::error!(
                        error = %e, id,
                        "plugipay event handled, but could not be marked done: a redelivery after the lease would run it again"
                    ),
                }
                Outcome::Handled
            }
            Err(why) => {
                tracing::warn!(
                    id,
                    event_type = self.event.event_type(),
                    "{why}; claim released for the retry"
                );
                if let Err(e) = inner.store.release(key, token).await {
                    tracing::warn!(error = %e, "could not release the claim; it lapses after the lease");
                }
                Outcome::HandlerFailed
            }
        }
    }
}
