//! The inbox's state shared by its handle and its workers.

use std::sync::Arc;
use std::time::Duration;

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
