//! Workers: claim due events under a lease, run their handler, record the
//! result.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::WebhookEvent;
use tracing::Instrument;

use super::{backoff, Inner, Job, Session, TxEnd};
use crate::dispatcher::{run_async, run_blocking, Handler};
use crate::store::ClaimToken;

tokio::task_local! {
    static ATTEMPT: u32;
}

thread_local! {
    static BLOCKING_ATTEMPT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// The attempt number (1 for the first) of the inbox event whose handler is
/// running on this task or thread; `None` outside an inbox handler.
#[must_use]
pub fn current_attempt() -> Option<u32> {
    ATTEMPT
        .try_with(|a| *a)
        .ok()
        .or_else(|| BLOCKING_ATTEMPT.with(std::cell::Cell::get))
}

/// What became of a processed event, for an inbox's observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Processed {
    /// Done (committed).
    Done,
    /// Failed; due again after a backoff.
    Retrying,
    /// Failed its last attempt.
    Dead,
    /// No handler for its type.
    Skipped,
}

impl Processed {
    fn as_str(self) -> &'static str {
        match self {
            Processed::Done => "done",
            Processed::Retrying => "retrying",
            Processed::Dead => "dead",
            Processed::Skipped => "skipped",
        }
    }
}

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
    while !stop.load(Ordering::SeqCst) {
        let s = match session.as_mut() {
            Some(s) => s,
            None => match inner.backend.session().await {
                Ok(s) => session.insert(s),
                Err(e) => {
                    tracing::warn!(error = %e, "inbox worker cannot reach the inbox; retrying");
                    tokio::time::sleep(inner.options.poll_interval).await;
                    continue;
                }
            },
        };
        match s.claim(owner, inner.options.lease).await {
            Ok(Some(job)) => process(&inner, s.as_mut(), owner, job).await,
            Ok(None) => {
                if index == 0 && last_gauges.elapsed() >= Duration::from_secs(5) {
                    last_gauges = Instant::now();
                    if let Ok(stats) = inner.backend.stats().await {
                        metrics::gauge!("plugipay_webhook_inbox_due")
                            .set(stats.count(super::State::Pending) as f64);
                        metrics::gauge!("plugipay_webhook_inbox_oldest_due_seconds")
                            .set(stats.oldest_due_ms as f64 / 1000.0);
                    }
                }
                let notified = inner.wake.notified();
                let waited = inner.backend.wait(inner.options.poll_interval);
                tokio::pin!(notified);
                tokio::pin!(waited);
                // Whichever comes first: a local receive, a notification
                // from another process, or the poll interval.
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
                tracing::warn!(error = %e, "inbox claim failed; reconnecting");
                session = None;
                tokio::time::sleep(inner.options.poll_interval).await;
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
        attempt = job.attempt,
        outcome = tracing::field::Empty,
    );
    async {
        let started = Instant::now();
        let processed = run(inner, session, owner, &job).await;
        if let Some(processed) = processed {
            tracing::Span::current().record("outcome", processed.as_str());
            metrics::counter!("plugipay_webhook_inbox_processed_total", "outcome" => processed.as_str())
                .increment(1);
            metrics::histogram!("plugipay_webhook_inbox_handler_seconds")
                .record(started.elapsed().as_secs_f64());
            if let Some(observe) = &inner.observer {
                observe(&job.id, &job.event_type, processed);
            }
        }
    }
    .instrument(span)
    .await;
}

/// `None` when the lease was lost (another worker has the event).
async fn run(
    inner: &Inner,
    session: &mut dyn Session,
    owner: &str,
    job: &Job,
) -> Option<Processed> {
    let options = &inner.options;
    let event = match WebhookEvent::from_verified_bytes(job.body.clone(), job.matched_secret) {
        Ok(event) => event,
        Err(e) => {
            let why = format!(
                "the stored body is not a valid event any more: {}",
                e.code()
            );
            return record(
                session,
                job,
                owner,
                Err(why),
                options.max_attempts,
                options,
                true,
            )
            .await;
        }
    };
    let Some(handler) = inner.handlers.get(&job.event_type) else {
        tracing::info!("no handler for this type: skipped");
        return match session.skip(job, owner).await {
            Ok(true) => Some(Processed::Skipped),
            _ => None,
        };
    };
    let result = match handler {
        Handler::Async(h) => {
            let fut = ATTEMPT.scope(job.attempt, run_async(h, event, options.handler_timeout));
            with_heartbeat(session, job, owner, options.lease, fut).await
        }
        Handler::Blocking(h) => {
            let attempt = job.attempt;
            let h = h.clone();
            let wrapped: crate::dispatcher::BlockingHandler = Arc::new(move |event| {
                BLOCKING_ATTEMPT.with(|a| a.set(Some(attempt)));
                let result = h(event);
                BLOCKING_ATTEMPT.with(|a| a.set(None));
                result
            });
            let fut = run_blocking(&wrapped, event);
            with_heartbeat(session, job, owner, options.lease, fut).await
        }
        Handler::Transactional(h) => {
            let ended = ATTEMPT
                .scope(
                    job.attempt,
                    session.transaction(job, owner, h, event, options.handler_timeout),
                )
                .await;
            match ended {
                Ok(TxEnd::Done) => return Some(Processed::Done),
                Ok(TxEnd::LostLease) => {
                    tracing::warn!(
                        "the lease lapsed before commit: rolled back, another worker has the event"
                    );
                    return None;
                }
                Ok(TxEnd::Failed(why)) => Err(why),
                Err(e) => Err(format!("inbox: {e}")),
            }
        }
    };
    record(session, job, owner, result, job.attempt, options, false).await
}

/// Runs `fut`, extending the lease every third of it meanwhile.
async fn with_heartbeat<F: Future<Output = Result<(), String>>>(
    session: &mut dyn Session,
    job: &Job,
    owner: &str,
    lease: Duration,
    fut: F,
) -> Result<(), String> {
    tokio::pin!(fut);
    loop {
        match tokio::time::timeout(lease / 3, &mut fut).await {
            Ok(result) => return result,
            Err(_) => {
                if let Err(e) = session.extend(job, owner, lease).await {
                    tracing::warn!(error = %e, "could not extend the lease of a running handler");
                }
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
    attempts: u32,
    options: &super::Options,
    force_dead: bool,
) -> Option<Processed> {
    match result {
        Ok(()) => match session.complete(job, owner).await {
            Ok(true) => Some(Processed::Done),
            Ok(false) => {
                tracing::warn!(
                    "handled, but the lease had lapsed: another worker may run it again"
                );
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "handled, but could not be marked done: it will run again after the lease");
                None
            }
        },
        Err(why) => {
            let dead = force_dead || attempts >= options.max_attempts;
            let retry_in = backoff::full_jitter(options.retry_base, options.retry_max, attempts);
            if dead {
                tracing::warn!(
                    "{why}; attempt {attempts} of {}: dead",
                    options.max_attempts
                );
            } else {
                tracing::warn!(
                    "{why}; attempt {attempts} of {}: again in {retry_in:?}",
                    options.max_attempts
                );
            }
            match session.fail(job, owner, &why, retry_in, dead).await {
                Ok(true) => Some(if dead {
                    Processed::Dead
                } else {
                    Processed::Retrying
                }),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %e, "could not record the failure; the lease will lapse");
                    None
                }
            }
        }
    }
}
