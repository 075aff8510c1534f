//! Receiving: a verified delivery stored (or refused) before any handler
//! runs, with its log line and metrics.

use plugipay_webhook::WebhookEvent;

use super::backend::{Inserted, NewEvent};
use super::machine::State;
use super::order;
use super::state::Inbox;
use super::types::Processed;
use crate::outcome::Outcome;

impl Inbox {
    /// Stores a verified delivery: [`Outcome::Stored`] once the row is
    /// committed (a duplicate adds nothing; a redelivery of a dead event
    /// makes it pending again with its attempts reset), or
    /// [`Outcome::StoreUnavailable`]. The event's
    /// [`signature_header`](WebhookEvent::signature_header) (set by every
    /// adapter) is kept as tamper evidence, and its
    /// [`tenant`](WebhookEvent::tenant) is part of its key.
    pub async fn receive(&self, event: &WebhookEvent) -> Outcome {
        self.inner.tenancy.check(event);
        let state = if self.inner.handlers.contains(event.event_type()) {
            State::Pending
        } else {
            State::Skipped
        };
        let order_key = self.inner.options.order.as_ref().and_then(|k| k.of(event));
        let object_id = order::object_id(event);
        let extra = [
            ("data.object.id", object_id.as_deref()),
            ("ordering key", order_key.as_deref()),
        ];
        if let Some(field) = crate::outcome::nul_field(event, &extra) {
            tracing::warn!(
                id = crate::text::printable(event.id()).as_ref(),
                field,
                "plugipay event refused: its {field} holds U+0000, which the inbox cannot keep as text (400 nul_in_text)"
            );
            metrics::counter!(
                "plugipay_webhook_inbox_received_total",
                "outcome" => Outcome::Unstorable.as_str(),
                "event_type" => self.inner.labels.event_type(event.event_type()),
                "tenant" => self.inner.labels.tenant(event.tenant())
            )
            .increment(1);
            event
                .span()
                .record("dispatch", Outcome::Unstorable.as_str());
            return Outcome::Unstorable;
        }
        let due_in_ms = if order_key.is_some() {
            crate::error::millis(self.inner.options.reorder_window)
        } else {
            0
        };
        let new = NewEvent {
            occurred_ms: event
                .occurred_at()
                .and_then(order::occurred_at_ms)
                .map(order::clamp_occurred_ms),
            object_id,
            order_key,
            due_in_ms,
            tenant: event.tenant().unwrap_or_default().to_owned(),
            id: event.id().to_owned(),
            event_type: event.event_type().to_owned(),
            body: event.raw_body().clone(),
            signature: event.signature_header().unwrap_or_default().to_owned(),
            matched_secret: i64::try_from(event.matched_secret()).unwrap_or(i64::MAX),
            account_id: event.account_id().map(str::to_owned),
            occurred_at: event.occurred_at().map(str::to_owned),
            state,
            trace: trace_of(event),
        };
        let started = std::time::Instant::now();
        let (id, event_type, tenant) = (event.id(), event.event_type(), event.tenant());
        // The metric tells a duplicate and a revival from a new event; the
        // sender is answered 202 for each.
        let (outcome, received) = match self.inner.backend.insert(&new).await {
            Ok(inserted) => {
                self.inner.outage.succeeded();
                if inserted != Inserted::Duplicate && state == State::Pending {
                    // One idle worker is enough for one event (waking them
                    // all would send every one of them to claim it).
                    self.inner.wake.notify_one();
                }
                match (inserted, state) {
                    (Inserted::New, State::Skipped) => {
                        // Stored and settled at once: no worker will see it.
                        tracing::info!(id, event_type, tenant, "plugipay event stored");
                        tracing::info!(
                            id, event_type, tenant,
                            "plugipay event skipped (no handler for its type; `inbox retry --skipped` once one is deployed)"
                        );
                        metrics::counter!(
                            "plugipay_webhook_inbox_processed_total",
                            "outcome" => Processed::Skipped.as_str(),
                            "event_type" => self.inner.labels.event_type(event_type),
                            "tenant" => self.inner.labels.tenant(tenant)
                        )
                        .increment(1);
                    }
                    (Inserted::New, _) => tracing::info!(id, event_type, tenant, "plugipay event stored"),
                    (Inserted::Duplicate, _) => {
                        tracing::info!(id, event_type, tenant, "plugipay event duplicate (stored before; nothing changed)");
                    }
                    (Inserted::Revived, _) => tracing::info!(
                        id, event_type, tenant,
                        "plugipay event revived (a redelivery of a dead event: pending again, attempts reset)"
                    ),
                }
                let received = match inserted {
                    Inserted::New => "stored",
                    Inserted::Duplicate => "duplicate",
                    Inserted::Revived => "revived",
                };
                (Outcome::Stored, received)
            }
            Err(e) => {
                tracing::debug!(error = %e, id, event_type, tenant, "plugipay event not stored: inbox unavailable");
                self.inner.outage.failed(&e, true);
                (
                    Outcome::StoreUnavailable,
                    Outcome::StoreUnavailable.as_str(),
                )
            }
        };
        let labels = &self.inner.labels;
        metrics::counter!(
            "plugipay_webhook_inbox_received_total",
            "outcome" => received,
            "event_type" => labels.event_type(event_type),
            "tenant" => labels.tenant(tenant)
        )
        .increment(1);
        metrics::histogram!("plugipay_webhook_inbox_ack_seconds")
            .record(started.elapsed().as_secs_f64());
        event.span().record("dispatch", outcome.as_str());
        outcome
    }
}

/// The receiving request's trace context: the delivery's span (the
/// adapters open one), else the current span.
#[cfg(feature = "otel")]
fn trace_of(event: &WebhookEvent) -> Option<String> {
    super::trace::capture(event.span()).or_else(|| super::trace::capture(&tracing::Span::current()))
}

/// Without the `otel` feature no trace context is stored.
#[cfg(not(feature = "otel"))]
fn trace_of(_event: &WebhookEvent) -> Option<String> {
    None
}
