//! Bodies carry personal data: no `Debug` output of the core shows one.

use bytes::Bytes;
use plugipay_webhook::http::BodyCollector;
use plugipay_webhook::RawBody;

const BODY: &str = r#"{"id":"evt_1","type":"t","data":{"object":{"email":"jane@example.com"}}}"#;

#[test]
fn raw_body_debug_shows_the_length_only() {
    let shown = format!("{:?}", RawBody::from(BODY));
    assert!(!shown.contains("jane"), "{shown}");
    assert!(shown.contains(&BODY.len().to_string()), "{shown}");
}

#[test]
fn body_collector_debug_shows_the_length_only() {
    let mut c = BodyCollector::new(1024, None);
    c.push(Bytes::from_static(&BODY.as_bytes()[..30])).unwrap();
    c.push(Bytes::from_static(&BODY.as_bytes()[30..])).unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("jane") && !shown.contains("evt_1"),
        "{shown}"
    );
    assert!(shown.contains(&BODY.len().to_string()), "{shown}");
}
