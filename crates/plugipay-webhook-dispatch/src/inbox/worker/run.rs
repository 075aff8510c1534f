//! One claimed event's run: each of its handlers that is due, in order —
//! plain, blocking or transactional, under its concurrency limit and the
//! handler timeout, the lease kept meanwhile — and their states recorded.

use std::time::Instant;

use plugipay_webhook::WebhookEvent;
use tracing::Instrument;

use super::super::backend::{Job, Session, TxEnd};
use super::super::machine::{Move, CUT_SHORT};
use super::super::progress::Progress;
use super::super::state::{Inner, Options};
use super::super::types::{HandlerState, Processed};
use super::report::{lease_lost, now_ms, DeadPair, Ended};
use super::settle::{finish, settle_unknown, with_lease, Deferred};
use crate::handlers::{run_async, run_blocking, Handler};

/// What a run shares with each handler's turn.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    inner: &'a Inner,
    job: &'a Job,
    owner: &'a str,
    event: &'a WebhookEvent,
    /// The handlers registered for the event's type: the outcome is theirs.
    registered: &'a [&'a str],
}

/// What one handler's turn came to.
enum Turn {
    /// It ran: its result, to record.
    Ran(Result<(), String>),
    /// Its transaction committed its state (and not the event's end): the
    /// handlers' states as committed.
    Committed(Progress),
    /// It did not run this time.
    Deferred(Deferred),
    /// The run ends here: the event done in the handler's own commit, or
    /// nothing this worker can vouch for (the lease lost, an unknown
    /// commit).
    End(Ended),
}

/// Runs one claimed event's due handlers in order and moves the event.
pub(super) async fn run(inner: &Inner, session: &mut dyn Session, owner: &str, job: &Job) -> Ended {
    let handlers = inner.handlers.named(&job.event_type);
    let registered: Vec<&str> = handlers.iter().map(|(name, _)| name.as_str()).collect();
    let (mut progress, due) = prepare(job, handlers);
    let event =
        match WebhookEvent::from_stored(job.body.clone(), job.matched_secret, Some(&job.tenant)) {
            Ok(event) => event,
            Err(e) => return unreadable(session, job, owner, progress, &due, e.code()).await,
        };
    if handlers.is_empty() {
        return match session.transition(job, owner, &Move::skip()).await {
            Ok(true) => Ended {
                processed: Some(Processed::Skipped),
                ..Ended::none()
            },
            _ => Ended::none(),
        };
    }
    let options = &inner.options;
    let ctx = Ctx {
        inner,
        job,
        owner,
        event: &event,
        registered: &registered,
    };
    let mut failed: Option<String> = None;
    // A handler that did not run this time (at its concurrency limit, or
    // its transaction never began): the event is due again and the attempt
    // is given back — a deferral spends none, whatever its siblings did
    // (theirs count in their own attempts).
    let mut deferred: Option<Deferred> = None;
    let mut dead = Vec::new();
    for (i, (name, handler)) in due.iter().enumerate() {
        // The last one to run, with every other one done: a transactional
        // one moves the event to done in its own commit.
        let may_end = i + 1 == due.len() && failed.is_none() && deferred.is_none();
        let (started_ms, started) = (now_ms(), Instant::now());
        match turn(ctx, session, name, handler, &progress, may_end, started_ms).await {
            Turn::Ran(Ok(())) => progress.record(name, started_ms, took_ms(started), Ok(()), false),
            Turn::Ran(Err(why)) => {
                // A handler's run is its last when it has had its attempts,
                // or the event has (runs cut short by a crash count for the
                // event only).
                let exhausted = job.attempt >= options.max_attempts
                    || progress.attempts(name).saturating_add(1) >= options.max_attempts;
                progress.record(name, started_ms, took_ms(started), Err(&why), exhausted);
                if exhausted {
                    dead.push(DeadPair {
                        handler: name.clone(),
                        error: why.clone(),
                        attempts: progress.attempts(name),
                    });
                }
                failed.get_or_insert(if due.len() > 1 {
                    format!("{name}: {why}")
                } else {
                    why
                });
            }
            Turn::Committed(after) => progress = after,
            Turn::Deferred(Deferred::AtLimit) => {
                deferred.get_or_insert(Deferred::AtLimit);
            }
            Turn::Deferred(other) => deferred = Some(other),
            Turn::End(ended) => return ended,
        }
    }
    let outcome = progress.outcome(registered);
    finish(
        session, job, owner, progress, outcome, failed, deferred, dead, options,
    )
    .await
}

/// The handlers' states as stored, with what a rerun mark and a lapsed
/// lease say, and the handlers due on this claim.
fn prepare<'h>(
    job: &Job,
    handlers: &'h [(String, Handler)],
) -> (Progress, Vec<&'h (String, Handler)>) {
    let mut progress = job.progress.clone();
    let rerun = job.rerun.as_deref();
    let due: Vec<&(String, Handler)> = handlers
        .iter()
        .filter(|(name, _)| progress.should_run(name, rerun))
        .collect();
    if rerun.is_some() {
        // A tool or a redelivery asked for these: each starts afresh.
        for (name, _) in &due {
            progress.reopen(name);
        }
    }
    if job.cut_short {
        // The attempt before this one stopped midway: in the history of
        // each handler it was due to run (stored with this run's outcome).
        let at = now_ms();
        for (name, _) in &due {
            progress.cut_short(name, at, CUT_SHORT);
        }
    }
    (progress, due)
}

/// A stored body that no longer reads as an event: every due handler dead.
async fn unreadable(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    mut progress: Progress,
    due: &[&(String, Handler)],
    code: plugipay_webhook::ErrorCode,
) -> Ended {
    let why = format!("the stored body is not a valid event any more: {code}");
    let mut dead = Vec::new();
    for (name, _) in due {
        progress.kill(name, &why);
        dead.push(DeadPair {
            handler: name.clone(),
            error: why.clone(),
            attempts: progress.attempts(name),
        });
    }
    let mv = Move::fail(why.clone()).with_progress(progress.to_json());
    match session.transition(job, owner, &mv).await {
        Ok(true) => Ended {
            processed: Some(Processed::Dead),
            error: Some(why),
            dead,
            ..Ended::none()
        },
        _ => Ended::none(),
    }
}

/// How long since `started`, in ms.
fn took_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One handler's turn: under its concurrency limit (at it, deferred), in
/// its span, the lease kept while it runs.
#[allow(clippy::too_many_arguments, reason = "one handler's whole turn")]
async fn turn(
    ctx: Ctx<'_>,
    session: &mut dyn Session,
    name: &str,
    handler: &Handler,
    progress: &Progress,
    may_end: bool,
    started_ms: i64,
) -> Turn {
    let (job, owner, options) = (ctx.job, ctx.owner, &ctx.inner.options);
    let mut permit = match ctx.inner.limits.get(name) {
        Some(limit) => match limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::debug!(handler = name, "handler at its concurrency limit: deferred");
                return Turn::Deferred(Deferred::AtLimit);
            }
        },
        None => None,
    };
    let span = tracing::info_span!("plugipay_webhook.inbox.handler", handler = name);
    let ran = match handler {
        Handler::Async(h) => {
            let fut = crate::attempt::scope(
                job.current(),
                run_async(h, ctx.event.clone(), options.handler_timeout),
            );
            with_lease(session, job, owner, options.lease, fut.instrument(span)).await
        }
        Handler::Blocking(h) => {
            // The permit goes with the thread (see `run_blocking`).
            let fut = run_blocking(h, ctx.event.clone(), Some(job.current()), permit.take());
            with_lease(session, job, owner, options.lease, fut.instrument(span)).await
        }
        Handler::Transactional(h) => {
            return tx_turn(ctx, session, name, h, progress, may_end, started_ms)
                .instrument(span)
                .await;
        }
    };
    match ran {
        Some(result) => Turn::Ran(result),
        // The lease is lost: the handler was cancelled (`with_lease` said so).
        None => Turn::End(Ended::none()),
    }
}

/// A transactional handler's turn: its writes and its state — with the
/// event's move to done when `may_end` and every registered handler is
/// done — in one commit.
async fn tx_turn(
    ctx: Ctx<'_>,
    session: &mut dyn Session,
    name: &str,
    h: &crate::handlers::TxHandler,
    progress: &Progress,
    may_end: bool,
    started_ms: i64,
) -> Turn {
    let (job, owner, options) = (ctx.job, ctx.owner, &ctx.inner.options);
    let started = Instant::now();
    let mut committed: Option<(Progress, bool)> = None;
    let mut settle = || {
        let mut after = progress.clone();
        after.record(name, started_ms, took_ms(started), Ok(()), false);
        let last = may_end && after.outcome(ctx.registered.iter().copied()) == HandlerState::Done;
        let json = after.to_json();
        committed = Some((after, last));
        (json, last)
    };
    let ran = transactional(
        session,
        job,
        owner,
        h,
        ctx.event.clone(),
        options,
        &mut settle,
    )
    .await;
    match ran {
        TxEnd::Done => match committed.take() {
            Some((_, true)) => Turn::End(Ended::done()),
            Some((after, false)) => Turn::Committed(after),
            None => Turn::Ran(Err(
                "the transaction committed without the handler's state".to_owned()
            )),
        },
        TxEnd::Failed(why) => Turn::Ran(Err(why)),
        TxEnd::NotBegun(why) => Turn::Deferred(Deferred::NotBegun(format!(
            "the inbox's transaction did not begin: {why}"
        ))),
        TxEnd::LostLease => {
            lease_lost(
                job,
                "the lease was lost before commit: rolled back, another worker has the event",
            );
            Turn::End(Ended::none())
        }
        TxEnd::Unknown(why) => {
            if matches!(committed, Some((_, true))) {
                return Turn::End(
                    settle_unknown(session, job, owner, why, options, true, None).await,
                );
            }
            // Whether its writes and its state committed is unknown, but
            // they did together or not at all: the next claim reads which.
            lease_lost(
                job,
                &format!("the commit's outcome is unknown ({why}): the lease will lapse"),
            );
            Turn::End(Ended::none())
        }
    }
}

/// Runs a transactional handler in the inbox's transaction.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn transactional(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    handler: &crate::handlers::TxHandler,
    event: WebhookEvent,
    options: &Options,
    settle: &mut (dyn FnMut() -> (String, bool) + Send),
) -> TxEnd {
    let Some(tx) = session.tx() else {
        // `build` refuses transactional handlers on such backends.
        return TxEnd::Failed(
            "this inbox has no transactions for a transactional handler".to_owned(),
        );
    };
    super::super::transactional::run_transactional(
        tx,
        job,
        owner,
        handler,
        event,
        options.handler_timeout,
        settle,
    )
    .await
}

/// Without a SQL backend compiled in there is no transaction to run in
/// (`build` refuses transactional handlers).
#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
async fn transactional(
    _session: &mut dyn Session,
    _job: &Job,
    _owner: &str,
    _handler: &crate::handlers::TxHandler,
    _event: WebhookEvent,
    _options: &Options,
    _settle: &mut (dyn FnMut() -> (String, bool) + Send),
) -> TxEnd {
    TxEnd::Failed("this inbox has no transactions for a transactional handler".to_owned())
}
