//! An event's move once its handlers ran (done, due again, dead — or
//! deferred), the lease kept while a handler runs, and what to do when a
//! commit's outcome is unknown.

use std::future::Future;
use std::time::{Duration, Instant};

use super::super::backend::{Job, Session};
use super::super::backoff;
use super::super::machine::{Move, State};
use super::super::progress::Progress;
use super::super::state::Options;
use super::super::types::{HandlerState, Processed};
use super::report::{lease_lost, DeadPair, Ended};
use crate::error::millis;

/// How soon an event whose handler was deferred is due again.
const DEFERRED: Duration = Duration::from_millis(50);

/// Why a handler did not run this time.
pub(super) enum Deferred {
    /// At its concurrency limit: due again at once, quietly.
    AtLimit,
    /// Its transaction never began (the store did not answer): retried
    /// after a backoff, reported.
    NotBegun(String),
}

/// The event's move once its handlers ran: due again while one failed (or
/// did not run), dead when the failures were the last attempt, else done —
/// with every handler's state.
#[allow(clippy::too_many_arguments, reason = "the run's whole outcome")]
pub(super) async fn finish(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    progress: Progress,
    outcome: HandlerState,
    failed: Option<String>,
    deferred: Option<Deferred>,
    dead: Vec<DeadPair>,
    options: &Options,
) -> Ended {
    let json = progress.to_json();
    // A handler did not run: the attempt is given back.
    let refund = deferred.is_some();
    match (failed.is_none(), deferred) {
        (true, Some(Deferred::NotBegun(why))) => {
            return retry(session, job, owner, why, options, true, Some(json)).await;
        }
        (true, Some(Deferred::AtLimit)) => {
            let mut mv = Move::retry(millis(DEFERRED), String::new())
                .refunded()
                .with_progress(json);
            mv.error = None;
            // Not an outcome: no milestone, no count (what ran is stored).
            if let Ok(true) = session.transition(job, owner, &mv).await {
                tracing::debug!(
                    id = job.id.as_str(),
                    "plugipay event deferred: a handler was at its concurrency limit"
                );
            }
            return Ended::none();
        }
        _ => {}
    }
    match outcome {
        HandlerState::Done => {
            let mv = Move::done().with_progress(json.clone());
            match session.transition(job, owner, &mv).await {
                Ok(true) => Ended::done(),
                Ok(false) => {
                    lease_lost(
                        job,
                        "handled, but the lease was lost: another worker may run it again",
                    );
                    Ended::none()
                }
                Err(e) => {
                    settle_unknown(
                        session,
                        job,
                        owner,
                        e.to_string(),
                        options,
                        false,
                        Some(json),
                    )
                    .await
                }
            }
        }
        HandlerState::Dead => {
            let why = failed.unwrap_or_else(|| dead_error(&progress));
            let mv = Move::fail(why.clone()).with_progress(json);
            match session.transition(job, owner, &mv).await {
                Ok(true) => Ended {
                    processed: Some(Processed::Dead),
                    error: Some(why),
                    dead,
                    ..Ended::none()
                },
                Ok(false) => Ended::none(),
                Err(e) => {
                    tracing::error!(error = %e, "could not record the failure; the lease will lapse");
                    Ended::none()
                }
            }
        }
        _ => {
            let why = failed.unwrap_or_else(|| "a handler is due again".to_owned());
            let mut ended = retry(session, job, owner, why, options, refund, Some(json)).await;
            if ended.processed.is_some() {
                ended.dead = dead;
            }
            ended
        }
    }
}

/// The first dead handler's error (for an event that died without a
/// failure in this run).
fn dead_error(progress: &Progress) -> String {
    progress
        .0
        .iter()
        .find(|h| h.state == HandlerState::Dead)
        .and_then(|h| h.last_error.clone())
        .unwrap_or_else(|| "a handler is dead".to_owned())
}

/// Runs `fut`, extending the lease every third of it meanwhile; `None` —
/// and `fut` dropped, cancelling an async handler (a blocking one's result
/// is discarded) — once the lease is lost: someone else holds it now, or it
/// could not be renewed before it lapsed.
pub(super) async fn with_lease<F: Future>(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    lease: Duration,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    let mut held_until = Instant::now() + lease;
    let extend = Move::extend(millis(lease));
    loop {
        if let Ok(result) = tokio::time::timeout(lease / 3, &mut fut).await {
            return Some(result);
        }
        let asked = Instant::now();
        match session.transition(job, owner, &extend).await {
            Ok(true) => held_until = asked + lease,
            Ok(false) => {
                lease_lost(
                    job,
                    "the lease was lost (another worker holds the event): the handler is cancelled",
                );
                return None;
            }
            Err(e) => {
                if Instant::now() + lease / 3 >= held_until {
                    lease_lost(
                        job,
                        &format!("the lease could not be renewed before it lapsed ({e}): the handler is cancelled"),
                    );
                    return None;
                }
                tracing::warn!(error = %e, "could not extend the lease of a running handler; trying again");
            }
        }
    }
}

/// Due again after a backoff (`refund`: the attempt did not count).
pub(super) async fn retry(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    why: String,
    options: &Options,
    refund: bool,
    progress: Option<String>,
) -> Ended {
    let retry_in = backoff::full_jitter(options.retry_base, options.retry_max, job.attempt);
    let mut mv = Move::retry(millis(retry_in), why.clone());
    if refund {
        mv = mv.refunded();
    }
    mv.progress = progress;
    match session.transition(job, owner, &mv).await {
        Ok(true) => Ended {
            processed: Some(Processed::Retrying),
            error: Some(why),
            retry_in: Some(retry_in),
            dead: Vec::new(),
        },
        Ok(false) => Ended::none(),
        Err(e) => {
            tracing::error!(error = %e, "could not record the failure; the lease will lapse");
            Ended::none()
        }
    }
}

/// After a commit (or a move to done) whose outcome is unknown: looks. Done
/// and still this owner's → it did commit. Still running under this owner
/// → it did not: a transaction's writes were rolled back with it, so the
/// attempt failed and is retried; a plain handler's work is done, so the
/// move to done is made again. Anything else → nothing to vouch for.
pub(super) async fn settle_unknown(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    why: String,
    options: &Options,
    in_transaction: bool,
    progress: Option<String>,
) -> Ended {
    match session.peek(job).await {
        Ok(Some((State::Done, Some(o)))) if o == owner => Ended::done(),
        Ok(Some((State::Running, Some(o)))) if o == owner => {
            if in_transaction {
                let why = format!("not committed ({why})");
                return retry(session, job, owner, why, options, false, None).await;
            }
            let mut mv = Move::done();
            mv.progress = progress;
            match session.transition(job, owner, &mv).await {
                Ok(true) => Ended::done(),
                _ => Ended::none(),
            }
        }
        Ok(_) => Ended::none(),
        Err(e) => {
            tracing::error!(error = %e, "the outcome of the commit is unknown ({why}); the lease will lapse and the event be looked at again");
            Ended::none()
        }
    }
}
