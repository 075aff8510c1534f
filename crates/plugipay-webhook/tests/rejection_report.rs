//! The process's report of rejected deliveries: the first at once, at
//! `info`, with its code and tenant; then at most one summary a minute,
//! written when the minute ends (not with the next rejection), counting by
//! code and tenant; quiet again once nothing is rejected. Alone in its test
//! binary: the report is process-wide.

#![cfg(feature = "tokio")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::http::{receive, HttpHead, Tenant, Verifiers};
use plugipay_webhook::testing::TestDelivery;

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
    /// The `INFO` lines written since the last call.
    fn take_info(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains("INFO"))
            .map(str::to_owned)
            .collect()
    }
}

async fn deliver(source: &Verifiers, tenant: &str, secret: &str) -> Result<(), String> {
    let (body, signature) = TestDelivery::new(secret, "plugipay.invoice.paid.v1").into_parts();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-plugipay-signature", signature.parse().unwrap());
    let path = format!("/t/{tenant}");
    let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
    receive(Some(source), &HttpHead::new(&path, &headers), body)
        .await
        .map(drop)
        .map_err(|r| r.code().to_owned())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_first_rejection_at_once_then_a_summary_per_minute_by_code_and_tenant() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let source = Verifiers::by_tenant(
        Tenant::in_path("/t/{tenant}"),
        Verifiers::parse_tenant_secrets("acme=whsec_acme;globex=whsec_globex").unwrap(),
    );
    let wrong = "whsec_wrong";

    // The first: at once, naming the code, the tenant and the likely cause.
    assert_eq!(
        deliver(&source, "acme", wrong).await,
        Err("signature_invalid".into())
    );
    let first = capture.take_info();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].contains("signature_invalid for tenant acme")
            && first[0].contains("a wrong secret"),
        "{first:?}"
    );
    // More within the minute: counted, not written.
    for _ in 0..3 {
        assert!(deliver(&source, "acme", wrong).await.is_err());
    }
    for _ in 0..2 {
        assert!(deliver(&source, "globex", wrong).await.is_err());
    }
    assert_eq!(
        deliver(&source, "initech", wrong).await,
        Err("endpoint_unknown".into())
    );
    assert_eq!(deliver(&source, "acme", "whsec_acme").await, Ok(()));
    assert!(
        capture.take_info().is_empty(),
        "nothing more before the minute ends"
    );
    // The minute ends with no new rejection: the summary is written anyway.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let summary = capture.take_info();
    assert_eq!(summary.len(), 1, "{summary:?}");
    let s = &summary[0];
    assert!(s.contains("6 deliveries rejected in the last 60 s"), "{s}");
    assert!(s.contains("signature_invalid: 5 [acme 3, globex 2]"), "{s}");
    assert!(s.contains("endpoint_unknown: 1 [initech 1]"), "{s}");
    // A quiet minute writes nothing, and then a rejection is reported at once again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(capture.take_info().is_empty());
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(deliver(&source, "globex", wrong).await.is_err());
    let again = capture.take_info();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].contains("for tenant globex"), "{again:?}");
    let everything = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        !everything.contains("whsec_"),
        "a secret in the logs: {everything}"
    );
}
