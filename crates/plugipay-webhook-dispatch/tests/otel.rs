//! Trace context across the queue (feature `otel`), with OpenTelemetry's
//! in-memory exporter: the first attempt continues the receiving request's
//! trace as a child of the receive span; a retry is a new trace linked to
//! it; the worker's span follows the messaging conventions; an unsampled
//! inbound trace stays unsampled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox, State};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "whsec_otel";
const PAID: &str = "plugipay.invoice.paid.v1";

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, PAID)
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn attempts_of<'s>(spans: &'s [SpanData], id: &str) -> Vec<&'s SpanData> {
    let mut found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "plugipay_webhook.inbox")
        .filter(|s| attribute(s, "messaging.message.id").as_deref() == Some(id))
        .collect();
    found.sort_by_key(|s| attribute(s, "attempt"));
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_one_trace_through_its_first_attempt_and_a_retry_is_linked() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("plugipay-test")));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let dir = std::env::temp_dir().join(format!("plugipay-otel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("inbox.sqlite3"));
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let inbox = Inbox::builder(SqliteInbox::open(dir.join("inbox.sqlite3")).await.unwrap())
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .poll_interval(Duration::from_millis(20))
        .on(PAID, move |event: WebhookEvent| {
            let r = r.clone();
            async move {
                // Each event's first attempt fails.
                if r.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    return Err(std::io::Error::other(format!("{} fails once", event.id())));
                }
                Ok(())
            }
        })
        .build()
        .unwrap();

    // A sampled request, and one whose inbound trace is not sampled.
    let receive = tracing::info_span!("receive");
    inbox
        .receive(&event("evt_sampled"))
        .instrument(receive.clone())
        .await;
    let unsampled = tracing::info_span!("receive unsampled");
    let _ = unsampled.set_parent(opentelemetry::Context::new().with_remote_span_context(
        SpanContext::new(
            TraceId::from(0x1111_u128),
            SpanId::from(0x2222_u64),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ),
    ));
    let receive_cx = receive.context().span().span_context().clone();
    drop(receive);
    let workers = inbox.start_workers(1);
    for _ in 0..200 {
        if inbox.stats().await.unwrap().count(State::Done) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The unsampled one after the sampled one is done (one failing first
    // attempt each, in turn).
    inbox
        .receive(&event("evt_unsampled"))
        .instrument(unsampled.clone())
        .await;
    drop(unsampled);
    for _ in 0..200 {
        if inbox.stats().await.unwrap().count(State::Done) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(inbox.stats().await.unwrap().count(State::Done), 2);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let received = spans
        .iter()
        .find(|s| s.name == "receive")
        .expect("the receive span");
    assert_eq!(received.span_context.span_id(), receive_cx.span_id());
    let attempts = attempts_of(&spans, "evt_sampled");
    assert_eq!(attempts.len(), 2, "two attempts: {spans:#?}");
    let (first, retry) = (attempts[0], attempts[1]);
    assert_eq!(
        first.span_context.trace_id(),
        receive_cx.trace_id(),
        "one trace"
    );
    assert_eq!(
        first.parent_span_id,
        receive_cx.span_id(),
        "a child of the receive span"
    );
    assert_ne!(
        retry.span_context.trace_id(),
        receive_cx.trace_id(),
        "a new trace"
    );
    let links: Vec<&SpanContext> = retry.links.iter().map(|l| &l.span_context).collect();
    assert_eq!(links.len(), 1, "{retry:#?}");
    assert_eq!(
        (links[0].trace_id(), links[0].span_id()),
        (receive_cx.trace_id(), receive_cx.span_id()),
        "linked to the receive span"
    );
    for (key, want) in [
        ("messaging.system", "plugipay_webhook_inbox"),
        ("messaging.operation.type", "process"),
        ("messaging.message.id", "evt_sampled"),
    ] {
        assert_eq!(attribute(first, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(first.span_kind, opentelemetry::trace::SpanKind::Consumer);
    // The handler's span is the attempt's child.
    assert!(spans
        .iter()
        .any(|s| s.name == "plugipay_webhook.inbox.handler"
            && s.parent_span_id == first.span_context.span_id()));

    // Unsampled in, unsampled through: neither its receive span nor any
    // attempt was exported.
    assert!(!spans.iter().any(|s| s.name == "receive unsampled"));
    assert!(
        attempts_of(&spans, "evt_unsampled").is_empty(),
        "{spans:#?}"
    );
}
