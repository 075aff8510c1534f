//! Workers: claim due events under a lease, run their handlers
//! ([`run`]), record the result ([`settle`]) and say so ([`report`]) —
//! one transition at a time, each checked against the lease.

mod report;
mod run;
mod settle;

use report::{alert_dead, report, DeadPair};
use run::run;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::backend::{ClaimParams, Claimed, Job, Session};
use super::machine::{State, EXHAUSTED_RUNNING};
use super::state::Inner;
use super::types::Processed;
use crate::error::millis;
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
                let progress = &job.progress;
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
