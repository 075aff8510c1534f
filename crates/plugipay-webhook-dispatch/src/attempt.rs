//! Which attempt of an inbox event a handler is running, and whether the
//! event is stale (ordering).

use std::cell::Cell;
use std::future::Future;

/// The attempt, and whether the event is stale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub(crate) attempt: u32,
    pub(crate) stale: bool,
}

tokio::task_local! {
    static ATTEMPT: Current;
}

thread_local! {
    static BLOCKING_ATTEMPT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// The attempt number (1 for the first) of the inbox event whose handler is
/// running on this task or thread; `None` outside an inbox handler.
#[must_use]
pub fn current_attempt() -> Option<u32> {
    current().map(|c| c.attempt)
}

/// Whether the inbox event whose handler is running on this task or thread
/// is *stale*: with ordering, an event about a key that has already done a
/// later one (its `occurred_at` is older than the key's high-water mark).
/// Handlers see stale events only with
/// [`InboxBuilder::on_stale`](crate::inbox::InboxBuilder::on_stale)`(Stale::Deliver)`;
/// `false` outside an inbox handler.
#[must_use]
pub fn is_stale() -> bool {
    current().is_some_and(|c| c.stale)
}

fn current() -> Option<Current> {
    ATTEMPT
        .try_with(|a| *a)
        .ok()
        .or_else(|| BLOCKING_ATTEMPT.with(Cell::get))
}

/// `fut` with [`current_attempt`] and [`is_stale`] answering `current`
/// inside it.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the inbox")
)]
pub(crate) fn scope<F: Future>(current: Current, fut: F) -> impl Future<Output = F::Output> {
    ATTEMPT.scope(current, fut)
}

/// Runs `f` on this (blocking) thread with [`current_attempt`] and
/// [`is_stale`] answering `current`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the inbox")
)]
pub(crate) fn on_thread<R>(current: Option<Current>, f: impl FnOnce() -> R) -> R {
    BLOCKING_ATTEMPT.with(|a| a.set(current));
    let r = f();
    BLOCKING_ATTEMPT.with(|a| a.set(None));
    r
}
