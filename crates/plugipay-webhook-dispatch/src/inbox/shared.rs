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
/// Called with everything about each processed event.
pub(crate) type DetailedObserver = Arc<dyn Fn(&ProcessedEvent<'_>) + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) handlers: Handlers,
    pub(crate) options: Options,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) observer: Option<Observer>,
    pub(crate) detailed: Option<DetailedObserver>,
    pub(crate) tenancy: crate::tenancy::Tenancy,
    /// The inbox's availability, as receives and claims see it.
    pub(crate) outage: Outage,
    pub(crate) labels: Labels,
}
