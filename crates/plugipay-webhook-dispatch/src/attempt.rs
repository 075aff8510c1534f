//! Which attempt of an inbox event a handler is running.

use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static ATTEMPT: u32;
}

thread_local! {
    static BLOCKING_ATTEMPT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// The attempt number (1 for the first) of the inbox event whose handler is
/// running on this task or thread; `None` outside an inbox handler.
#[must_use]
pub fn current_attempt() -> Option<u32> {
    ATTEMPT
        .try_with(|a| *a)
        .ok()
        .or_else(|| BLOCKING_ATTEMPT.with(Cell::get))
}

/// `fut` with [`current_attempt`] answering `attempt` inside it.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the inbox")
)]
pub(crate) fn scope<F: Future>(attempt: u32, fut: F) -> impl Future<Output = F::Output> {
    ATTEMPT.scope(attempt, fut)
}

/// Runs `f` on this (blocking) thread with [`current_attempt`] answering
/// `attempt`.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the inbox")
)]
pub(crate) fn on_thread<R>(attempt: Option<u32>, f: impl FnOnce() -> R) -> R {
    BLOCKING_ATTEMPT.with(|a| a.set(attempt));
    let r = f();
    BLOCKING_ATTEMPT.with(|a| a.set(None));
    r
}
