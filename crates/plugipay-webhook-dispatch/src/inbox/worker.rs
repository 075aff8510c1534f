//! Workers: claim due events under a lease, run their handler, record the
//! result — one transition at a time, each checked against the lease.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::WebhookEvent;
use tracing::Instrument;

use super::backend::{ClaimParams, Claimed, Job, Session};
use super::backoff;
use super::machine::{Move, State, EXHAUSTED_RUNNING};
use super::shared::{Inner, Options};
use super::types::{Processed, ProcessedEvent};
use crate::error::millis;
use crate::handlers::{run_async, run_blocking, Handler};
use crate::token::ClaimToken;

/// Running workers; [`shutdown`](Workers::shutdown) stops them.
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
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|i| tokio::spawn(work(inner.clone(), stop.clone(), i)))
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
}

impl Ended {
    fn none() -> Ended {
        Ended {
            processed: None,
            error: None,
            retry_in: None,
        }
    }

    fn done() -> Ended {
        Ended {
            processed: Some(Processed::Done),
            ..Ended::none()
        }
    }
}

/// Runs one claimed event's handler and records the result.
async fn process(inner: &Inner, session: &mut dyn Session, owner: &str, job: Job) {
    let span = tracing::info_span!(
        "plugipay_webhook.inbox",
        id = %job.id,
        event_type = %job.event_type,
        tenant = %job.tenant,
        attempt = job.attempt,
        outcome = tracing::field::Empty,
    );
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
        }
    }
    .instrument(span)
    .await;
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
            "plugipay event dead: {error}"
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
    if let Some(observe) = &inner.observer {
        observe(&job.id, &job.event_type, processed);
    }
    if let Some(observe) = &inner.detailed {
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
    }
}

async fn run(inner: &Inner, session: &mut dyn Session, owner: &str, job: &Job) -> Ended {
    let options = &inner.options;
    let event =
        match WebhookEvent::from_stored(job.body.clone(), job.matched_secret, Some(&job.tenant)) {
            Ok(event) => event,
            Err(e) => {
                let why = format!(
                    "the stored body is not a valid event any more: {}",
                    e.code()
                );
                return record(session, job, owner, Err(why), options, true).await;
            }
        };
    let Some(handler) = inner.handlers.get(&job.event_type) else {
        return match session.transition(job, owner, &Move::skip()).await {
            Ok(true) => Ended {
                processed: Some(Processed::Skipped),
                ..Ended::none()
            },
            _ => Ended::none(),
        };
    };
    let result = match handler {
        Handler::Async(h) => {
            let fut =
                crate::attempt::scope(job.current(), run_async(h, event, options.handler_timeout));
            match with_lease(session, job, owner, options.lease, fut).await {
                Some(result) => result,
                None => return Ended::none(),
            }
        }
        Handler::Blocking(h) => {
            let fut = run_blocking(h, event, Some(job.current()));
            match with_lease(session, job, owner, options.lease, fut).await {
                Some(result) => result,
                None => return Ended::none(),
            }
        }
        Handler::Transactional(h) => {
            match transactional(session, job, owner, h, event, options).await {
                Ok(ended) => return ended,
                Err(why) => Err(why),
            }
        }
    };
    record(session, job, owner, result, options, false).await
}

/// Runs a transactional handler in the inbox's transaction: `Ok` with what
/// to report when the run settled the event itself, `Err` with why it
/// failed (rolled back).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn transactional(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    handler: &crate::handlers::TxHandler,
    event: WebhookEvent,
    options: &Options,
) -> Result<Ended, String> {
    use super::txn::{run_transactional, TxEnd};
    let Some(tx) = session.tx() else {
        // `build` refuses transactional handlers on such backends.
        return Err("this inbox has no transactions for a transactional handler".to_owned());
    };
    match run_transactional(tx, job, owner, handler, event, options.handler_timeout).await {
        TxEnd::Done => Ok(Ended::done()),
        TxEnd::LostLease => {
            lease_lost(
                job,
                "the lease was lost before commit: rolled back, another worker has the event",
            );
            Ok(Ended::none())
        }
        TxEnd::Failed(why) => Err(why),
        TxEnd::NotBegun(why) => {
            // The handler never ran: the attempt is given back.
            let why = format!("the inbox's transaction did not begin: {why}");
            Ok(retry(session, job, owner, why, options, true).await)
        }
        TxEnd::Unknown(why) => Ok(settle_unknown(session, job, owner, why, options, true).await),
    }
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
) -> Result<Ended, String> {
    Err("this inbox has no transactions for a transactional handler".to_owned())
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

/// Marks the event done, or failed (due again, or dead).
async fn record(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    result: Result<(), String>,
    options: &Options,
    force_dead: bool,
) -> Ended {
    let why = match result {
        Ok(()) => {
            return match session.transition(job, owner, &Move::done()).await {
                Ok(true) => Ended::done(),
                Ok(false) => {
                    lease_lost(
                        job,
                        "handled, but the lease was lost: another worker may run it again",
                    );
                    Ended::none()
                }
                Err(e) => settle_unknown(session, job, owner, e.to_string(), options, false).await,
            };
        }
        Err(why) => why,
    };
    if force_dead || job.attempt >= options.max_attempts {
        return match session
            .transition(job, owner, &Move::fail(why.clone()))
            .await
        {
            Ok(true) => Ended {
                processed: Some(Processed::Dead),
                error: Some(why),
                retry_in: None,
            },
            Ok(false) => Ended::none(),
            Err(e) => {
                tracing::error!(error = %e, "could not record the failure; the lease will lapse");
                Ended::none()
            }
        };
    }
    retry(session, job, owner, why, options, false).await
}

/// Due again after a backoff (`refund`: the attempt did not count).
async fn retry(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    why: String,
    options: &Options,
    refund: bool,
) -> Ended {
    let retry_in = backoff::full_jitter(options.retry_base, options.retry_max, job.attempt);
    let mut mv = Move::retry(millis(retry_in), why.clone());
    if refund {
        mv = mv.refunded();
    }
    match session.transition(job, owner, &mv).await {
        Ok(true) => Ended {
            processed: Some(Processed::Retrying),
            error: Some(why),
            retry_in: Some(retry_in),
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
) -> Ended {
    match session.peek(job).await {
        Ok(Some((State::Done, Some(o)))) if o == owner => Ended::done(),
        Ok(Some((State::Running, Some(o)))) if o == owner => {
            if in_transaction {
                let why = format!("not committed ({why})");
                return retry(session, job, owner, why, options, false).await;
            }
            match session.transition(job, owner, &Move::done()).await {
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
