//! The core verifier against every conformance vector (signatures made by
//! Python's `hmac`), through both entry points.

use plugipay_webhook::{Bytes, ErrorCode, WebhookEvent};
use plugipay_webhook_conformance::{load_vectors, Expect, Vector};

fn check(v: &Vector, result: Result<WebhookEvent, ErrorCode>, via: &str) -> Result<(), String> {
    match (&v.expect, result) {
        (Expect::Ok(want), Ok(ev)) => {
            let got = (
                ev.id(),
                ev.event_type(),
                ev.account_id(),
                ev.occurred_at(),
                ev.object(),
                ev.matched_secret(),
            );
            let exp = (
                want.id.as_str(),
                want.event_type.as_str(),
                want.account_id.as_deref(),
                want.occurred_at.as_deref(),
                &want.object,
                want.matched_secret,
            );
            if got != exp {
                return Err(format!("{} via {via}: got {got:?}, want {exp:?}", v.name));
            }
            if ev.raw_body()[..] != v.body[..] {
                return Err(format!("{} via {via}: raw_body differs", v.name));
            }
            let raw: serde_json::Value = serde_json::from_slice(&v.body).unwrap();
            if ev.raw() != &raw {
                return Err(format!("{} via {via}: raw() differs", v.name));
            }
            Ok(())
        }
        (Expect::Error(code), Err(got)) if got.as_str() == code => Ok(()),
        (want, got) => Err(format!("{} via {via}: want {want:?}, got {got:?}", v.name)),
    }
}

#[test]
fn every_vector_gives_its_answer() {
    let file = load_vectors();
    assert!(file.vectors.len() > 100, "vector file looks truncated");
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for v in &file.vectors {
        let verifier = v.verifier();
        let key = match &v.expect {
            Expect::Ok(_) => "ok".to_owned(),
            Expect::Error(c) => c.clone(),
        };
        *counts.entry(key).or_default() += 1;

        // The adapters' path: all header fields as raw bytes, then the body.
        let via_parts = verifier
            .check_header(v.headers.iter().map(Vec::as_slice))
            .and_then(|h| verifier.verify_parsed_at(Bytes::from(v.body.clone()), &h, v.now))
            .map_err(|e| e.code());
        if let Err(e) = check(v, via_parts, "check_header+verify_parsed_at") {
            failures.push(e);
        }
        // The one-call path, where one text header (or none) can express it.
        if let Some(header) = v.single_header() {
            let via_verify = verifier
                .verify_at(&v.body[..], header, v.now)
                .map_err(|e| e.code());
            if let Err(e) = check(v, via_verify, "verify_at") {
                failures.push(e);
            }
        }
    }
    // Every code of the contract is covered by several vectors.
    for code in ErrorCode::ALL {
        assert!(
            counts.get(code.as_str()).copied().unwrap_or(0) >= 5,
            "{counts:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn error_messages_never_contain_secrets_signatures_or_body() {
    for v in load_vectors().vectors {
        let verifier = v.verifier();
        let Err(err) = verifier
            .check_header(v.headers.iter().map(Vec::as_slice))
            .and_then(|h| verifier.verify_parsed_at(Bytes::from(v.body.clone()), &h, v.now))
        else {
            continue;
        };
        let shown = format!("{err} {err:?} {}", err.detail());
        for s in v.secrets.iter().filter(|s| !s.is_empty()) {
            assert!(!shown.contains(s.as_str()), "{}: secret in {shown}", v.name);
        }
        let expected_sig = plugipay_webhook::testing::sign(
            v.secrets
                .iter()
                .find(|s| !s.is_empty())
                .map_or("", |s| s.as_str()),
            v.now,
            &v.body,
        );
        assert!(
            !shown.contains(&expected_sig),
            "{}: signature in {shown}",
            v.name
        );
        if v.body.len() > 8 {
            let body = String::from_utf8_lossy(&v.body);
            assert!(!shown.contains(&*body), "{}: body in {shown}", v.name);
        }
    }
}
