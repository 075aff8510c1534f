//! Workers: claim due events under a lease, run their handler, record the
//! result — one transition at a time, each checked against the lease.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::WebhookEvent;
use tracing::Instrument;

use super::backend::{ClaimParams, Claimed, Job, Session, TxEnd};
use super::backoff;
use super::machine::{Move, State, CUT_SHORT, EXHAUSTED_RUNNING};
use super::progress::Progress;
use super::state::{Inner, Options};
use super::types::HandlerState;
use super::types::{Processed, ProcessedEvent};
use crate::error::millis;
use crate::handlers::{run_async, run_blocking, Handler};
use crate::token::ClaimToken;

/// Running workers, from [`Inbox::start_workers`](super::Inbox::start_workers);
/// [`shutdown`](Workers::shutdown) stops them.
///
/// - **Dropping** a `Workers` does not stop them: the tasks go on claiming
///   and processing until the runtime itself shuts down (then each event
///   they held is taken again once its lease lapses, and an open
///   transaction rolls back). Keep it, and call `shutdown` on the way out.
/// - **`shutdown(deadline)`** stops claiming at once, lets every event in
///   flight finish — its handler, its move to `done` or its retry, its
///   commit — and waits at most `deadline` for that. What is still running
///   then is abandoned: its lease lapses and another worker (of this
///   process after a restart, or of another replica) runs it again; nothing
///   half-done commits.
/// - A handler's panic is its attempt's failure; a worker task that
///   panics itself (a bug) is started
///   again, and counted in `plugipay_webhook_inbox_worker_restarts_total`.
///
/// ```no_run
/// # async fn f(inbox: plugipay_webhook_dispatch::inbox::Inbox) {
/// let workers = inbox.start_workers(4);
/// // … serve until SIGTERM …
/// workers.shutdown(std::time::Duration::from_secs(10)).await;
/// # }
/// ```
pub struct Workers {
    stop: Arc<AtomicBool>,
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("running", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Workers {
    pub(crate) fn start(inner: Arc<Inner>, n: usize) -> Workers {
        // At zero from the start, so that an alert on them has a series.
        for which in ["observe", "on_processed"] {
            metrics::counter!("plugipay_webhook_inbox_observer_panics_total", "observer" => which)
                .increment(0);
        }
        metrics::counter!("plugipay_webhook_inbox_worker_restarts_total").increment(0);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| tokio::spawn(supervise(inner.clone(), stop.clone(), i)))
            .collect();
        Workers { stop, inner, tasks }
    }

    /// Stops claiming, lets in-flight events finish within `deadline`, then
    /// abandons what is left: those events' leases lapse (and their
    /// transactions roll back), so another worker takes them.
    pub async fn shutdown(self, deadline: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        let until = tokio::time::Instant::now() + deadline;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(until, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Aborts its task when dropped (the supervisor aborted by `shutdown`
/// takes its worker with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs worker `index`, and runs it again when it ends in a panic (a bug of
/// ours, or of code we call): a panicking worker would otherwise be gone
/// for good while receivers keep answering 202. Each restart is one error
/// line and a count (`plugipay_webhook_inbox_worker_restarts_total`); the
/// event it held is taken again when its lease lapses.
async fn supervise(inner: Arc<Inner>, stop: Arc<AtomicBool>, index: usize) {
    loop {
        let mut task = AbortOnDrop(tokio::spawn(work(inner.clone(), stop.clone(), index)));
        match (&mut task.0).await {
            Err(e) if e.is_panic() && !stop.load(Ordering::SeqCst) => {
                tracing::error!(worker = index, "an inbox worker panicked: started again");
                metrics::counter!("plugipay_webhook_inbox_worker_restarts_total").increment(1);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}

async fn work(inner: Arc<Inner>, stop: Arc<AtomicBool>, index: usize) {
    let owner = ClaimToken::new();
    let owner = owner.as_str();
    let mut session: Option<Box<dyn Session>> = None;
    let mut last_gauges = Instant::now() - Duration::from_secs(60);
    let options = &inner.options;
    while !stop.load(Ordering::SeqCst) {
        let s = match session.as_mut() {
            Some(s) => s,
            None => match inner.backend.session().await {
                Ok(s) => session.insert(s),
                Err(e) => {
                    tracing::debug!(error = %e, "inbox worker cannot reach the inbox; retrying");
                    inner.outage.failed(&e, false);
                    tokio::time::sleep(options.poll_interval).await;
                    continue;
                }
            },
        };
        let params = ClaimParams {
            owner,
            lease_ms: millis(options.lease),
            max_attempts: options.max_attempts,
            ordered: options.order.is_some(),
            skip_stale: options.stale == super::order::Stale::Skip,
            dead_holds_key: options.dead_holds_key,
        };
        let claimed = s.claim(params).await;
        if claimed.is_ok() {
            inner.outage.succeeded();
        }
        match claimed {
            Ok(Claimed::Job(job)) => process(&inner, s.as_mut(), owner, job).await,
            Ok(Claimed::Exhausted(job)) => {
                report(
                    &inner,
                    &job,
                    Processed::Dead,
                    Some(EXHAUSTED_RUNNING),
                    None,
                    Duration::ZERO,
                );
                // Every handler that had not succeeded dies with it — but
                // one dead already was alerted then, not again.
                let progress = Progress::parse(job.progress.as_deref());
                let dead = inner
                    .handlers
                    .named(&job.event_type)
                    .iter()
                    .filter(|(name, _)| progress.should_run(name, job.rerun.as_deref()))
                    .map(|(name, _)| DeadPair {
                        handler: name.clone(),
                        error: EXHAUSTED_RUNNING.to_owned(),
                        attempts: job.attempt,
                    })
                    .collect();
                alert_dead(&inner, &job, dead).await;
            }
            Ok(Claimed::Stale(job)) => {
                report(&inner, &job, Processed::Stale, None, None, Duration::ZERO);
            }
            Ok(Claimed::Idle { due_in_ms: Some(0) }) => {
                // A claim lost a race for a key (ordering): claim again.
                tokio::task::yield_now().await;
            }
            Ok(Claimed::Idle { due_in_ms }) => {
                if index == 0 && last_gauges.elapsed() >= Duration::from_secs(5) {
                    last_gauges = Instant::now();
                    if let Ok(stats) = inner.backend.stats().await {
                        gauges(&stats);
                    }
                }
                // Until the earliest known event is due, a notification
                // (a local receive, another process's), or the poll interval.
                let wait = due_in_ms
                    .map(|ms| Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)))
                    .map_or(options.poll_interval, |d| d.min(options.poll_interval));
                let notified = inner.wake.notified();
                let waited = inner.backend.wait(wait);
                tokio::pin!(notified);
                tokio::pin!(waited);
                std::future::poll_fn(|cx| {
                    use std::task::Poll;
                    if notified.as_mut().poll(cx).is_ready() || waited.as_mut().poll(cx).is_ready()
                    {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "inbox claim failed; reconnecting");
                inner.outage.failed(&e, false);
                session = None;
                tokio::time::sleep(options.poll_interval).await;
            }
        }
    }
}

/// What one run came to: the outcome to report (`None`: nothing this
/// worker can vouch for — the lease was lost, or the outcome is unknown and
/// the lease will lapse), the error and when it is due again.
struct Ended {
    processed: Option<Processed>,
    error: Option<String>,
    retry_in: Option<Duration>,
    /// Handlers that became dead with it: alerted once the state is
    /// stored.
    dead: Vec<DeadPair>,
}

/// One (event, handler) pair that became dead: its handler, last error and
/// attempts.
#[derive(Debug)]
pub(super) struct DeadPair {
    handler: String,
    error: String,
    attempts: u32,
}

impl Ended {
    fn none() -> Ended {
        Ended {
            processed: None,
            error: None,
            retry_in: None,
            dead: Vec::new(),
        }
    }

    fn done() -> Ended {
        Ended {
            processed: Some(Processed::Done),
            ..Ended::none()
        }
    }
}

/// How soon an event whose handler was deferred is due again.
const DEFERRED: Duration = Duration::from_millis(50);

/// Runs one claimed event's handler and records the result.
async fn process(inner: &Inner, session: &mut dyn Session, owner: &str, job: Job) {
    let span = tracing::info_span!(
        "plugipay_webhook.inbox",
        id = %job.id,
        event_type = %job.event_type,
        tenant = %job.tenant,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
        otel.kind = "consumer",
        messaging.system = "plugipay_webhook_inbox",
        messaging.operation.type = "process",
        messaging.message.id = %job.id,
    );
    #[cfg(feature = "otel")]
    super::trace::continue_in(&span, job.trace.as_deref(), job.attempt);
    async {
        tracing::debug!(owner = &owner[..8], "plugipay inbox event claimed");
        let started = Instant::now();
        let ended = run(inner, session, owner, &job).await;
        if let Some(processed) = ended.processed {
            tracing::Span::current().record("outcome", processed.as_str());
            metrics::histogram!(
                "plugipay_webhook_inbox_handler_seconds",
                "event_type" => inner.labels.event_type(&job.event_type)
            )
            .record(started.elapsed().as_secs_f64());
            report(
                inner,
                &job,
                processed,
                ended.error.as_deref(),
                ended.retry_in,
                started.elapsed(),
            );
            alert_dead(inner, &job, ended.dead).await;
        }
    }
    .instrument(span)
    .await;
}

/// One (event, handler) pair became dead: a log line, the metric, and the
/// alert — once, after the state is stored.
pub(super) async fn alert_dead(inner: &Inner, job: &Job, dead: Vec<DeadPair>) {
    for DeadPair {
        handler,
        error,
        attempts,
    } in dead
    {
        let tenant = (!job.tenant.is_empty()).then_some(job.tenant.as_str());
        tracing::error!(
            id = job.id.as_str(),
            event_type = job.event_type.as_str(),
            tenant,
            handler = handler.as_str(),
            attempts,
            error = error.as_str(),
            // The message interpolates the handler's error, which may carry
            // signed data: escaped, so it cannot start a line of its own.
            "plugipay handler dead: {}",
            crate::text::printable(&error)
        );
        metrics::counter!(
            "plugipay_webhook_inbox_dead_total",
            "event_type" => inner.labels.event_type(&job.event_type),
            "handler" => handler.clone()
        )
        .increment(1);
        let Some(alert) = &inner.on_dead else {
            continue;
        };
        let letter = super::state::DeadLetter {
            event: WebhookEvent::from_stored(
                job.body.clone(),
                job.matched_secret,
                Some(&job.tenant),
            )
            .ok(),
            id: job.id.clone(),
            event_type: job.event_type.clone(),
            tenant: job.tenant.clone(),
            handler,
            attempts,
            error,
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| alert(letter)));
        let finished = match ran {
            Ok(fut) => {
                tokio::time::timeout(
                    inner.options.handler_timeout,
                    crate::handlers::CatchUnwind(Box::pin(async move {
                        fut.await;
                        Ok::<(), crate::error::HandlerError>(())
                    })),
                )
                .await
            }
            Err(_) => Ok(Err("panicked".to_owned())),
        };
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(why)) => tracing::error!(
                id = job.id.as_str(),
                "plugipay dead-letter alert failed: {why}"
            ),
            Err(_) => tracing::error!(id = job.id.as_str(), "plugipay dead-letter alert timed out"),
        }
    }
}

/// The inbox's gauges, from its counts.
fn gauges(stats: &super::types::Stats) {
    metrics::gauge!("plugipay_webhook_inbox_due").set(stats.count(State::Pending) as f64);
    metrics::gauge!("plugipay_webhook_inbox_oldest_due_seconds")
        .set(stats.oldest_due_ms as f64 / 1000.0);
    for state in State::ALL {
        metrics::gauge!("plugipay_webhook_inbox_events", "state" => state.as_str())
            .set(stats.count(state) as f64);
    }
}

/// The "lease lost" milestone: this worker's lease on the event is gone (it
/// lapsed, or another worker took the event over), so what it did is not
/// recorded — one line, in the milestones' shape.
fn lease_lost(job: &Job, why: &str) {
    let tenant = (!job.tenant.is_empty()).then_some(job.tenant.as_str());
    tracing::warn!(
        id = job.id.as_str(),
        event_type = job.event_type.as_str(),
        tenant,
        attempt = job.attempt,
        "plugipay event lease lost: {why}"
    );
}

/// Milliseconds since the epoch, by this machine's clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Logs the milestone (one line, a stable shape: the id, type and tenant
/// as fields), counts, observes.
fn report(
    inner: &Inner,
    job: &Job,
    processed: Processed,
    error: Option<&str>,
    retry_in: Option<Duration>,
    took: Duration,
) {
    let (id, event_type) = (job.id.as_str(), job.event_type.as_str());
    let tenant = (!job.tenant.is_empty()).then_some(job.tenant.as_str());
    let attempt = job.attempt;
    let max = inner.options.max_attempts;
    let since_received_ms = now_ms().saturating_sub(job.received_at_ms).max(0);
    let error = error.unwrap_or_default();
    match processed {
        Processed::Done => tracing::info!(
            id, event_type, tenant, attempts = attempt, since_received_ms,
            "plugipay event done"
        ),
        Processed::Retrying => {
            let retry_in_ms = retry_in.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            tracing::warn!(
                id, event_type, tenant, attempt, max_attempts = max, retry_in_ms, error,
                "plugipay event retry: attempt {attempt} of {max} failed; again in {retry_in_ms} ms"
            );
        }
        Processed::Dead => tracing::error!(
            id, event_type, tenant, attempts = attempt, since_received_ms, error,
            "plugipay event dead: {}", crate::text::printable(error)
        ),
        Processed::Skipped => tracing::info!(
            id, event_type, tenant,
            "plugipay event skipped (no handler for its type; `inbox retry --skipped` once one is deployed)"
        ),
        Processed::Stale => tracing::info!(
            id, event_type, tenant,
            "plugipay event stale (its key has done an event that happened later: not handed over)"
        ),
    }
    let labels = &inner.labels;
    metrics::counter!(
        "plugipay_webhook_inbox_processed_total",
        "outcome" => processed.as_str(),
        "event_type" => labels.event_type(event_type),
        "tenant" => labels.tenant(tenant)
    )
    .increment(1);
    // The application's observers: a panic in one is logged and counted,
    // never allowed to end the worker that called it.
    if let Some(observe) = &inner.observer {
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            observe(&job.id, &job.event_type, processed);
        }));
        if called.is_err() {
            observer_panicked(id, event_type, "observe");
        }
    }
    if let Some(observe) = &inner.detailed {
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            observe(&ProcessedEvent {
                id,
                event_type,
                tenant,
                processed,
                attempt,
                error: (!error.is_empty()).then_some(error),
                retry_in,
                took,
            });
        }));
        if called.is_err() {
            observer_panicked(id, event_type, "on_processed");
        }
    }
}

/// An observer's panic: one error line and a count
/// (`plugipay_webhook_inbox_observer_panics_total`).
fn observer_panicked(id: &str, event_type: &str, which: &'static str) {
    tracing::error!(
        id,
        event_type,
        observer = which,
        "the inbox's {which} observer panicked (the event's outcome is stored; the worker goes on)"
    );
    metrics::counter!("plugipay_webhook_inbox_observer_panics_total", "observer" => which)
        .increment(1);
}

async fn run(inner: &Inner, session: &mut dyn Session, owner: &str, job: &Job) -> Ended {
    let options = &inner.options;
    let handlers = inner.handlers.named(&job.event_type);
    let registered: Vec<&str> = handlers.iter().map(|(name, _)| name.as_str()).collect();
    let mut progress = Progress::parse(job.progress.as_deref());
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
    let event =
        match WebhookEvent::from_stored(job.body.clone(), job.matched_secret, Some(&job.tenant)) {
            Ok(event) => event,
            Err(e) => {
                let why = format!(
                    "the stored body is not a valid event any more: {}",
                    e.code()
                );
                let mut dead = Vec::new();
                for (name, _) in &due {
                    progress.kill(name, &why);
                    dead.push(DeadPair {
                        handler: name.clone(),
                        error: why.clone(),
                        attempts: progress.attempts(name),
                    });
                }
                let mv = Move::fail(why.clone()).with_progress(progress.to_json());
                return match session.transition(job, owner, &mv).await {
                    Ok(true) => Ended {
                        processed: Some(Processed::Dead),
                        error: Some(why),
                        dead,
                        ..Ended::none()
                    },
                    _ => Ended::none(),
                };
            }
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
    // A handler's run is its last when it has had its attempts, or the
    // event has (runs cut short by a crash count for the event only).
    let last_run = |progress: &Progress, name: &str| {
        job.attempt >= options.max_attempts
            || progress.attempts(name).saturating_add(1) >= options.max_attempts
    };
    let mut failed: Option<String> = None;
    // A handler that did not run this time (at its concurrency limit, or
    // its transaction never began): the event is due again and the attempt
    // is given back — a deferral spends none, whatever its siblings did
    // (theirs count in their own attempts).
    let mut deferred: Option<Deferred> = None;
    let mut dead = Vec::new();
    for (i, (name, handler)) in due.iter().enumerate() {
        let mut permit = match inner.limits.get(name) {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::debug!(
                        handler = name.as_str(),
                        "handler at its concurrency limit: deferred"
                    );
                    deferred.get_or_insert(Deferred::AtLimit);
                    continue;
                }
            },
            None => None,
        };
        let span = tracing::info_span!("plugipay_webhook.inbox.handler", handler = name.as_str());
        let started_ms = now_ms();
        let started = Instant::now();
        let took_ms =
            |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let result = match handler {
            Handler::Async(h) => {
                let fut = crate::attempt::scope(
                    job.current(),
                    run_async(h, event.clone(), options.handler_timeout),
                );
                match with_lease(session, job, owner, options.lease, fut.instrument(span)).await {
                    Some(result) => result,
                    None => return Ended::none(),
                }
            }
            Handler::Blocking(h) => {
                // The permit goes with the thread (see `run_blocking`).
                let fut = run_blocking(h, event.clone(), Some(job.current()), permit.take());
                match with_lease(session, job, owner, options.lease, fut.instrument(span)).await {
                    Some(result) => result,
                    None => return Ended::none(),
                }
            }
            Handler::Transactional(h) => {
                // The last one to run, with every other one done: its
                // transaction moves the event to done too (one commit).
                let may_end = i + 1 == due.len() && failed.is_none() && deferred.is_none();
                let mut committed: Option<(Progress, bool)> = None;
                let mut settle = || {
                    let mut after = progress.clone();
                    after.record(name, started_ms, took_ms(started), Ok(()), false);
                    let last =
                        may_end && after.outcome(registered.iter().copied()) == HandlerState::Done;
                    let json = after.to_json();
                    committed = Some((after, last));
                    (json, last)
                };
                let ran =
                    transactional(session, job, owner, h, event.clone(), options, &mut settle)
                        .instrument(span)
                        .await;
                match ran {
                    TxEnd::Done => match committed.take() {
                        Some((after, true)) => {
                            let _ = after;
                            return Ended::done();
                        }
                        Some((after, false)) => {
                            progress = after;
                            continue;
                        }
                        None => {
                            Err("the transaction committed without the handler's state".to_owned())
                        }
                    },
                    TxEnd::Failed(why) => Err(why),
                    TxEnd::NotBegun(why) => {
                        deferred = Some(Deferred::NotBegun(format!(
                            "the inbox's transaction did not begin: {why}"
                        )));
                        continue;
                    }
                    TxEnd::LostLease => {
                        lease_lost(
                            job,
                            "the lease was lost before commit: rolled back, another worker has \
                             the event",
                        );
                        return Ended::none();
                    }
                    TxEnd::Unknown(why) => {
                        if matches!(committed, Some((_, true))) {
                            return settle_unknown(session, job, owner, why, options, true, None)
                                .await;
                        }
                        // Whether its writes and its state committed is
                        // unknown, but they did together or not at all:
                        // the next claim reads which.
                        lease_lost(
                            job,
                            &format!(
                                "the commit's outcome is unknown ({why}): the lease will lapse"
                            ),
                        );
                        return Ended::none();
                    }
                }
            }
        };
        match result {
            Ok(()) => progress.record(name, started_ms, took_ms(started), Ok(()), false),
            Err(why) => {
                let exhausted = last_run(&progress, name);
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
        }
    }
    let outcome = progress.outcome(registered);
    finish(
        session, job, owner, progress, outcome, failed, deferred, dead, options,
    )
    .await
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
    super::transactional::run_transactional(
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

/// Why a handler did not run this time.
enum Deferred {
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
async fn finish(
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
async fn with_lease<F: Future>(
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
async fn retry(
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
async fn settle_unknown(
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
