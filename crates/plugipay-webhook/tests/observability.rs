//! What an operator sees: one span per delivery, configuration mistakes
//! warned about — never a secret. (The rejection report: `rejection_report.rs`.)

use std::io::Write;
use std::sync::{Arc, Mutex};

use plugipay_webhook::http::{receive, HttpHead};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::Verifier;

/// Everything the subscriber writes, for the test to read.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with a subscriber writing every event (with its spans) at
/// `level` and above into the returned capture.
fn captured(level: tracing::Level, f: impl FnOnce()) -> String {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    capture.text()
}

fn deliver(verifier: &Verifier, delivery: TestDelivery) -> Result<(), String> {
    let (body, signature) = delivery.into_parts();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-plugipay-signature", signature.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
        let event = receive(Some(verifier), &HttpHead::new("/hook", &headers), body)
            .await
            .map_err(|r| r.code().to_owned())?;
        // What a handler logs joins the delivery's span.
        let _entered = event.span().enter();
        tracing::info!("handler ran");
        Ok(())
    })
}

#[test]
fn every_delivery_has_a_span_with_id_type_secret_and_outcome() {
    let verifier = Verifier::from_secrets(["whsec_new", "whsec_old"]);
    let logs = captured(tracing::Level::INFO, || {
        deliver(
            &verifier,
            TestDelivery::new("whsec_old", "plugipay.invoice.paid.v1").id("evt_span_1"),
        )
        .unwrap();
    });
    let line = logs
        .lines()
        .find(|l| l.contains("handler ran"))
        .unwrap_or_else(|| panic!("no handler line in {logs}"));
    for field in [
        "plugipay_webhook.delivery",
        "id=\"evt_span_1\"",
        "event_type=\"plugipay.invoice.paid.v1\"",
        "matched_secret=1",
        "outcome=\"verified\"",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(!logs.contains("whsec_"), "a secret in the logs: {logs}");
}

#[test]
fn an_empty_secret_is_refused_where_the_api_can_and_warned_about_where_it_cannot() {
    assert!(Verifier::try_new("").is_err());
    assert!(Verifier::try_new("  ").is_err());
    assert!(Verifier::try_from_secrets(["", ""]).is_err());
    assert!(Verifier::try_from_secrets(["", "whsec_x"]).is_ok());
    let logs = captured(tracing::Level::WARN, || {
        let v = Verifier::new("");
        assert_eq!(v.secret_count(), 1);
    });
    assert!(logs.contains("without a non-empty secret"), "{logs}");
}
