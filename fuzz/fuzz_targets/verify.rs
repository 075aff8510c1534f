//! Full verification on arbitrary input.
//!
//! Input: a selector byte, then the header, `\n\n`, and the body. Selector
//! bit 7 set: the body is signed correctly here (exercising the JSON
//! checks); clear: the header is taken as given. Bits 0-1 choose the keyring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plugipay_webhook::{testing, ErrorCode, SignatureHeader, Verifier};

const NOW: i64 = 1_767_225_600;
const SECRET: &str = "whsec_test_conformance";
const OLD: &str = "whsec_old_conformance";

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let secrets: &[&str] = match sel & 3 {
        0 => &[SECRET],
        1 => &[SECRET, OLD],
        2 => &["", OLD],
        _ => &[""],
    };
    let signed;
    let header: &[u8] = if sel & 0x80 != 0 {
        signed = testing::sign_header(
            secrets
                .iter()
                .find(|s| !s.is_empty())
                .copied()
                .unwrap_or("x"),
            NOW,
            body,
        );
        signed.as_bytes()
    } else {
        header
    };
    let verifier = Verifier::from_secrets(secrets);
    let result = verifier
        .check_header([header])
        .and_then(|h| verifier.verify_parsed_at(body.to_vec(), &h, NOW));
    match result {
        Ok(event) => {
            // A header that verifies carries a v1 equal to the HMAC of a
            // configured secret, computed here by the signing helper.
            let t = SignatureHeader::parse(header)
                .expect("verified header parses")
                .timestamp();
            let expected: Vec<String> = secrets
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| testing::sign(s, t, body))
                .collect();
            let text = std::str::from_utf8(header).expect("ASCII header");
            let found = text
                .split(',')
                .filter_map(|item| item.split_once('='))
                .filter(|(k, _)| k.trim() == "v1")
                .any(|(_, v)| expected.iter().any(|e| e.eq_ignore_ascii_case(v.trim())));
            assert!(found, "verified without a matching v1");
            assert!((NOW - t).abs() <= 300);
            // The envelope agrees with serde_json, and reading it never fails.
            let v: serde_json::Value =
                serde_json::from_slice(body).expect("a verified body is JSON");
            assert_eq!(v["id"].as_str(), Some(event.id()));
            assert_eq!(v["type"].as_str(), Some(event.event_type()));
            assert_eq!(event.raw(), &v);
            let _ = event.object();
            assert_eq!(&event.raw_body()[..], body);
        }
        Err(e) => assert!(ErrorCode::ALL.contains(&e.code())),
    }
});
