//! Signs a sample event the way Plugipay does, then verifies it, a tampered
//! copy and a stale copy, printing what a receiver would see.
//!
//! cargo run -p plugipay-webhook-examples --bin sign-and-verify

use plugipay_webhook::{testing, Verifier};

fn main() {
    let secret = "whsec_example_secret";
    let verifier = Verifier::new(secret);
    let now = verifier.now();
    let body = br#"{"id":"evt_01HXEXAMPLE","type":"plugipay.invoice.paid.v1","account_id":"acc_01HX","occurred_at":"2026-01-01T00:00:00Z","data":{"object":{"id":"inv_01H","total":4200}}}"#;
    let header = testing::sign_header(secret, now, body);
    println!("X-Plugipay-Signature: {header}");

    match verifier.verify(&body[..], Some(&header)) {
        Ok(event) => println!(
            "valid:    {} {} object={}",
            event.id(),
            event.event_type(),
            event.object()
        ),
        Err(e) => println!("valid:    unexpected {e}"),
    }
    let tampered = String::from_utf8_lossy(body).replace("4200", "1");
    match verifier.verify(tampered, Some(&header)) {
        Ok(_) => println!("tampered: unexpectedly accepted"),
        Err(e) => println!("tampered: {e}"),
    }
    let stale = testing::sign_header(secret, now - 600, body);
    match verifier.verify(&body[..], Some(&stale)) {
        Ok(_) => println!("stale:    unexpectedly accepted"),
        Err(e) => println!("stale:    {e}"),
    }
}
