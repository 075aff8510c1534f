//! A transactional handler's run, the same on every SQL backend: begin and
//! lock the row, run the handler, move to done and commit — inside a guard
//! that makes leaking a transaction impossible. Whatever leaves the scope
//! other than a confirmed `COMMIT` or `ROLLBACK` — `?`, an error, a timeout,
//! a cancelled future, a panic — discards the connection (or, on SQLite,
//! queues its rollback before anything else can use it): it never goes back
//! to the worker inside a transaction.

use std::time::Duration;

use plugipay_webhook::WebhookEvent;

use super::backend::{Begun, Job, TxConn, TxEnd};
use crate::handlers::{run_tx, TxHandler};

/// Discards the connection on drop unless a confirmed end disarmed it.
struct Guard<'c> {
    conn: &'c mut dyn TxConn,
    open: bool,
}

impl Guard<'_> {
    /// Rolls back; a rollback that fails discards the connection.
    async fn rollback(&mut self) {
        if self.conn.rollback().await.is_err() {
            self.conn.discard();
        }
        self.open = false;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.open {
            tracing::debug!(
                "a transaction was left without COMMIT or ROLLBACK: its connection is discarded"
            );
            self.conn.discard();
        }
    }
}

/// Runs `handler` for `job` in a transaction on `conn` that also stores
/// the handlers' states `settle` gives once the handler succeeded (and
/// moves the event to done when `settle` says it was the last).
pub(crate) async fn run_transactional(
    conn: &mut dyn TxConn,
    job: &Job,
    owner: &str,
    handler: &TxHandler,
    event: WebhookEvent,
    timeout: Duration,
    settle: &mut (dyn FnMut() -> (String, bool) + Send),
) -> TxEnd {
    let mut guard = Guard { conn, open: true };
    match guard.conn.begin(job, owner).await {
        Ok(Begun::Locked) => {}
        Ok(Begun::LostLease) => {
            guard.open = false;
            return TxEnd::LostLease;
        }
        // Whether BEGIN took effect is unknown: the guard discards.
        Err(e) => return TxEnd::NotBegun(e.to_string()),
    }
    let ran = {
        let mut tx = guard.conn.handle();
        crate::attempt::scope(job.current(), run_tx(handler, &mut tx, event, timeout)).await
    };
    if let Err(why) = ran {
        guard.rollback().await;
        return TxEnd::Failed(why);
    }
    let (progress, last) = settle();
    let committed = guard.conn.commit_done(job, owner, &progress, last).await;
    // commit_done ends the transaction itself, one way or the other (and
    // throws the connection away when it cannot tell which).
    guard.open = false;
    committed
}
