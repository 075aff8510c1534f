//! What a worker says about an event it ran: the run's end ([`Ended`]),
//! the milestone line, the metrics and the observers, the lease-lost line
//! and the dead-letter alerts.

use std::time::Duration;

use plugipay_webhook::WebhookEvent;

use super::super::backend::Job;
use super::super::state::Inner;
use super::super::types::{Processed, ProcessedEvent};

/// What one run came to: the outcome to report (`None`: nothing this
/// worker can vouch for — the lease was lost, or the outcome is unknown and
/// the lease will lapse), the error and when it is due again.
pub(super) struct Ended {
    pub(super) processed: Option<Processed>,
    pub(super) error: Option<String>,
    pub(super) retry_in: Option<Duration>,
    /// Handlers that became dead with it: alerted once the state is
    /// stored.
    pub(super) dead: Vec<DeadPair>,
}

/// One (event, handler) pair that became dead: its handler, last error and
/// attempts.
#[derive(Debug)]
pub(super) struct DeadPair {
    pub(super) handler: String,
    pub(super) error: String,
    pub(super) attempts: u32,
}

impl Ended {
    pub(super) fn none() -> Ended {
        Ended {
            processed: None,
            error: None,
            retry_in: None,
            dead: Vec::new(),
        }
    }

    pub(super) fn done() -> Ended {
        Ended {
            processed: Some(Processed::Done),
            ..Ended::none()
        }
    }
}

/// Logs the milestone (one line, a stable shape: the id, type and tenant
/// as fields), counts, observes.
pub(super) fn report(
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

/// The "lease lost" milestone: this worker's lease on the event is gone (it
/// lapsed, or another worker took the event over), so what it did is not
/// recorded — one line, in the milestones' shape.
pub(super) fn lease_lost(job: &Job, why: &str) {
    let tenant = (!job.tenant.is_empty()).then_some(job.tenant.as_str());
    tracing::warn!(
        id = job.id.as_str(),
        event_type = job.event_type.as_str(),
        tenant,
        attempt = job.attempt,
        "plugipay event lease lost: {why}"
    );
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
        let letter = super::super::state::DeadLetter {
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

/// Milliseconds since the epoch, by this machine's clock.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
