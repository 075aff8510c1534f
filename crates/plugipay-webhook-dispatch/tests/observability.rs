//! The dispatcher joins the delivery's span: a handler's own log lines
//! carry the delivery's id and type, and the outcome is recorded on it.

use std::sync::{Arc, Mutex};

use plugipay_webhook::http::{receive, HttpHead};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::Verifier;
use plugipay_webhook_dispatch::{Dispatcher, MemoryStore, Outcome};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn handler_logs_carry_the_delivery_span_and_the_outcome_is_recorded() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dispatcher = Dispatcher::builder(MemoryStore::new())
            .on("plugipay.invoice.paid.v1", |_event| async {
                tracing::info!("recording the payment");
                Ok::<_, std::io::Error>(())
            })
            .build()
            .unwrap();
        let verifier = Verifier::new("whsec_obs");
        let (body, signature) = TestDelivery::new("whsec_obs", "plugipay.invoice.paid.v1")
            .id("evt_obs_1")
            .into_parts();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-plugipay-signature", signature.parse().unwrap());
        let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
        let event = receive(Some(&verifier), &HttpHead::new("/hook", &headers), body)
            .await
            .unwrap();
        assert_eq!(dispatcher.dispatch(&event).await, Outcome::Handled);
        drop(event);
    });
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    let handler = logs
        .lines()
        .find(|l| l.contains("recording the payment"))
        .unwrap_or_else(|| panic!("no handler line in {logs}"));
    assert!(
        handler.contains("plugipay_webhook.delivery") && handler.contains("id=\"evt_obs_1\""),
        "{handler}"
    );
    let closed = logs
        .lines()
        .find(|l| l.contains("close") && l.contains("plugipay_webhook.delivery"))
        .unwrap_or_else(|| panic!("the span never closed: {logs}"));
    assert!(
        closed.contains("outcome=\"verified\"") && closed.contains("dispatch=\"handled\""),
        "{closed}"
    );
}
