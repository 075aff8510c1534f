//! Properties: any single-byte change is rejected; no input panics; every
//! failure carries one of the four codes.

use plugipay_webhook::{testing, ErrorCode, Verifier};
use proptest::prelude::*;

const SECRET: &str = "whsec_property";
const NOW: i64 = 1_767_225_600;

fn body_for(object: &str) -> Vec<u8> {
    format!(r#"{{"id":"evt_p","type":"plugipay.invoice.paid.v1","data":{{"object":{object}}}}}"#)
        .into_bytes()
}

fn verifier() -> Verifier {
    Verifier::new(SECRET)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_body_byte_change_is_rejected(
        object in "[a-z0-9 ]{0,40}",
        pos in any::<prop::sample::Index>(),
        new in any::<u8>(),
    ) {
        let mut body = body_for(&format!("{object:?}"));
        let header = testing::sign_header(SECRET, NOW, &body);
        prop_assert!(verifier().verify_at(&body[..], Some(&header), NOW).is_ok());
        let i = pos.index(body.len());
        prop_assume!(body[i] != new);
        body[i] = new;
        let err = verifier().verify_at(&body[..], Some(&header), NOW).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::SignatureInvalid);
    }

    #[test]
    fn any_header_byte_change_is_rejected(
        pos in any::<prop::sample::Index>(),
        new in any::<u8>(),
    ) {
        let body = body_for("{}");
        let mut header = testing::sign_header(SECRET, NOW, &body).into_bytes();
        let i = pos.index(header.len());
        prop_assume!(header[i] != new);
        let old = header[i];
        header[i] = new;
        // Changing the hex case of a signature digit is the one change that
        // keeps the same signature (hex is compared case-insensitively).
        prop_assume!(!(old.is_ascii_alphabetic() && new == old.to_ascii_uppercase() && i > 13));
        let header = String::from_utf8_lossy(&header).into_owned();
        let result = verifier().verify_at(&body[..], Some(&header), NOW);
        prop_assert!(result.is_err(), "{header} verified");
    }

    #[test]
    fn any_other_timestamp_is_rejected(delta in 1i64..1_000_000) {
        let body = body_for("{}");
        let sig = testing::sign(SECRET, NOW, &body);
        let header = format!("t={},v1={sig}", NOW + delta);
        let err = verifier().verify_at(&body[..], Some(&header), NOW + delta).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::SignatureInvalid);
    }

    #[test]
    fn arbitrary_headers_and_bodies_never_panic(
        header in prop::collection::vec(any::<u8>(), 0..300),
        body in prop::collection::vec(any::<u8>(), 0..300),
        now in any::<i64>(),
    ) {
        let v = Verifier::from_secrets([SECRET, ""]);
        let result = v
            .check_header([header.as_slice()])
            .and_then(|h| v.verify_parsed_at(body.clone(), &h, now));
        if let Err(e) = result {
            prop_assert!(ErrorCode::ALL.contains(&e.code()));
            prop_assert!(!e.to_string().contains(SECRET));
        }
    }

    #[test]
    fn structured_headers_never_panic(
        items in prop::collection::vec(
            ("(t|v1|v0|T| t|)", "[ \t]{0,2}", "[0-9a-fA-F+\\-. ]{0,70}"), 0..40),
        now in any::<i64>(),
    ) {
        let header: String = items.iter().map(|(k, w, v)| format!("{k}{w}={w}{v},")).collect();
        let body = body_for("[1,2,3]");
        let _ = verifier().verify_at(&body[..], Some(&header), now);
    }

    #[test]
    fn a_verified_body_is_always_valid_utf8_json(
        prefix in "[ -~]{0,20}",
        middle in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        // `{"id":"<prefix><arbitrary bytes>","type":"t"}`, signed correctly.
        let mut body = br#"{"id":""#.to_vec();
        body.extend_from_slice(prefix.as_bytes());
        body.extend_from_slice(&middle);
        body.extend_from_slice(br#"","type":"t"}"#);
        let header = testing::sign_header(SECRET, NOW, &body);
        let ours = verifier().verify_at(&body[..], Some(&header), NOW);
        let serde = serde_json::from_slice::<serde_json::Value>(&body);
        if let Ok(ev) = &ours {
            prop_assert!(std::str::from_utf8(&body).is_ok());
            let v = serde.as_ref().expect("serde accepts what we verify");
            prop_assert_eq!(v["id"].as_str(), Some(ev.id()));
        } else if serde.as_ref().is_ok_and(|v| v["id"].is_string() && v["type"] == "t") {
            // serde accepts a few things the contract rejects: lone surrogate
            // escapes, and a duplicated key spelled in the arbitrary bytes.
            prop_assert!(middle.windows(2).any(|w| w == b"\\u") || middle.contains(&b'"'), "{:?}", body);
        }
    }

    #[test]
    fn arbitrary_json_shaped_bodies_never_panic_and_verified_ones_read_back(
        body in "[\\[\\]{}\",:a-z0-9\\\\ .eE+\\-]{0,200}",
    ) {
        let header = testing::sign_header(SECRET, NOW, body.as_bytes());
        if let Ok(ev) = verifier().verify_at(body.as_str(), Some(&header), NOW) {
            // Whatever verified must read back without failure.
            let _ = (ev.object(), ev.raw(), ev.id(), ev.event_type());
            prop_assert_eq!(ev.raw_body().as_ref(), body.as_bytes());
        }
    }
}

#[test]
fn verified_envelopes_agree_with_serde_json() {
    // Cross-check the scanner against serde_json on valid envelopes.
    let body = br#"{"id":"evt_\u00e9","type":"t","data":{"object":{"a":[1,2,{"b":null}],"c":"\ud83d\ude00"}}}"#;
    let header = testing::sign_header(SECRET, NOW, body);
    let ev = verifier().verify_at(&body[..], Some(&header), NOW).unwrap();
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(ev.id(), "evt_é");
    assert_eq!(ev.object(), &v["data"]["object"]);
    assert_eq!(ev.raw(), &v);
}

/// Verifies `{"id":"evt_n","type":"t","data":{"object":<number>}}` and
/// compares the answer with serde_json's (the parser behind `object()`),
/// with whatever features the dependency graph gives it.
fn number_agrees_with_serde_json(number: &str) -> Result<(), TestCaseError> {
    let body = body_for(number);
    let header = testing::sign_header(SECRET, NOW, &body);
    let ours = verifier().verify_at(&body[..], Some(&header), NOW);
    let serde = serde_json::from_slice::<serde_json::Value>(&body);
    prop_assert_eq!(
        ours.is_ok(),
        serde.is_ok(),
        "{}: ours {:?}, serde_json {:?}",
        number,
        ours.as_ref().err(),
        serde.as_ref().err()
    );
    if let Ok(ev) = ours {
        // And what verified reads back as exactly what serde_json reads.
        prop_assert_eq!(ev.object(), &serde.expect("agreed")["data"]["object"]);
        prop_assert!(
            ev.object().is_number(),
            "{} read back as {}",
            number,
            ev.object()
        );
    }
    Ok(())
}

#[test]
fn numbers_at_the_edge_of_f64_agree_with_serde_json() {
    let max309 = format!("{:.0}", f64::MAX); // 309 digits
    for n in [
        // f64::MAX written as Rust prints it: correctly rounded by
        // `str::parse`, overflowed by serde_json without `float_roundtrip`.
        "1.7976931348623158e308",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "-1.7976931348623158e308",
        "17976931348623158e292",
        "0.17976931348623158e309",
        "0.0000017976931348623158e314",
        "1e308",
        "1e309",
        "9.9e307",
        "1e400",
        "-1e400",
        "1e-400",
        "0e999999999999",
        "0.0e400",
        "1e0000000000000000000308",
        "1E+308",
        "2.2250738585072014e-308",
        "5e-324",
        &max309,
        &format!("1{max309}"),
        &format!("{max309}.5"),
    ] {
        number_agrees_with_serde_json(n).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The scanner and serde_json accept exactly the same numbers, around
    /// the edges of f64's range above all.
    #[test]
    fn numbers_agree_with_serde_json(
        negative in any::<bool>(),
        int in prop_oneof![
            Just("0".to_owned()),
            "[1-9][0-9]{0,24}",
            "1797693134862315[0-9]{0,10}",
            "[1-9][0-9]{295,312}",
        ],
        frac in prop::option::of("[0-9]{1,30}"),
        exp in prop::option::of((
            "[eE]",
            "[+\\-]?",
            prop_oneof![
                (0i64..400).prop_map(|e| e.to_string()),
                (280i64..340).prop_map(|e| e.to_string()),
                "0{0,8}[0-9]{1,4}",
                "[0-9]{5,12}",
            ],
        )),
    ) {
        let mut n = String::new();
        if negative {
            n.push('-');
        }
        n.push_str(&int);
        if let Some(f) = frac {
            n.push('.');
            n.push_str(&f);
        }
        if let Some((e, sign, digits)) = exp {
            n.push_str(&e);
            n.push_str(&sign);
            n.push_str(&digits);
        }
        number_agrees_with_serde_json(&n)?;
    }
}
