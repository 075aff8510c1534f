//! The inbox's handle ([`Inbox`]), the storage behind it
//! ([`InboxBackend`]), and the state the handle and its workers share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "postgres")]
use super::backend::postgres::PostgresInbox;
#[cfg(feature = "redis")]
use super::backend::redis::RedisInbox;
#[cfg(feature = "sqlite")]
use super::backend::sqlite::SqliteInbox;
use super::backend::Backend;
use super::types::{Processed, ProcessedEvent};
use crate::handlers::Handlers;
use crate::labels::Labels;
use crate::outage::Outage;

/// Options of an [`Inbox`].
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) lease: Duration,
    pub(crate) handler_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) poll_interval: Duration,
    /// Ordering: the key (`None`: unordered).
    pub(crate) order: Option<super::order::OrderKey>,
    /// Ordering: how long a new event waits before it is due.
    pub(crate) reorder_window: Duration,
    /// Ordering: what becomes of a stale event.
    pub(crate) stale: super::order::Stale,
    /// Ordering: a dead event keeps its key blocked.
    pub(crate) dead_holds_key: bool,
}

/// Called with each processed event's id, type and what became of it.
pub(crate) type Observer = Arc<dyn Fn(&str, &str, Processed) + Send + Sync>;
/// The dead-letter alert.
pub(crate) type DeadAlert =
    Arc<dyn Fn(DeadLetter) -> crate::error::BoxFuture<'static, ()> + Send + Sync>;

/// What [`on_dead`](super::InboxBuilder::on_dead) is told: an (event,
/// handler) pair has just become dead.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The verified event, as stored (`None` when its stored body no
    /// longer reads as an event).
    pub event: Option<plugipay_webhook::WebhookEvent>,
    /// Its id.
    pub id: String,
    /// Its type.
    pub event_type: String,
    /// Its tenant (empty: a single verifier).
    pub tenant: String,
    /// The handler's name.
    pub handler: String,
    /// The handler's own attempts when it died (the event's, when a claim
    /// found the event's attempts exhausted by crashes).
    pub attempts: u32,
    /// The last error (never the body).
    pub error: String,
}

/// Called with everything about each processed event.
pub(crate) type DetailedObserver = Arc<dyn Fn(&ProcessedEvent<'_>) + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) handlers: Handlers,
    pub(crate) options: Options,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) observer: Option<Observer>,
    pub(crate) detailed: Option<DetailedObserver>,
    pub(crate) on_dead: Option<DeadAlert>,
    /// Concurrency limits per handler name, in this process.
    pub(crate) limits: std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>,
    pub(crate) tenancy: crate::tenancy::Tenancy,
    /// The inbox's availability, as receives and claims see it.
    pub(crate) outage: Outage,
    pub(crate) labels: Labels,
}

/// A durable inbox: [`receive`](Inbox::receive) stores a verified delivery
/// and answers [`Outcome::Stored`](crate::Outcome::Stored) (202) — or [`Outcome::StoreUnavailable`](crate::Outcome::StoreUnavailable)
/// (503), never a 2xx for an event that is not stored — before any handler
/// runs; [`Workers`](super::Workers) ([`start_workers`](Inbox::start_workers)) process due
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

/// The storage behind an [`Inbox`]: a `SqliteInbox`, a `PostgresInbox` or a `RedisInbox`
/// (`Into<InboxBackend>`), or one named by a URL ([`inbox_from_url`](super::inbox_from_url)).
#[derive(Clone)]
pub struct InboxBackend(pub(crate) Arc<dyn Backend>);

impl InboxBackend {
    /// Whether handlers can write in the inbox's own transaction
    /// ([`InboxBuilder::on_tx`](super::InboxBuilder::on_tx)): SQLite and PostgreSQL, not Redis.
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
