//! What the example receivers log, as an operator reads it: one line per
//! milestone of an event (stored, retry, done), an outage as one change of
//! state (unavailable since …, available again after … with the count of
//! refused deliveries) — and at `RUST_LOG=trace`, through all of it, never
//! a body or a signature.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::plumbing::{through, Mode, Process, Proxy};
use plugipay_webhook_conformance::{send, RawRequest};

mod common;
use common::{bin, fresh_schema, server_url};

const SECRET: &str = "whsec_logs_tests";
const PAID: &str = "plugipay.invoice.paid.v1";
/// In every body: it must never be logged.
const MARKER: &str = "card_holder_jane_q_public_0xMARK";

/// `POST path` of event `id`, signed now: the status (0: no answer) and the
/// signature header sent.
fn deliver(addr: SocketAddr, path: &str, secret: &str, id: &str) -> (u16, String) {
    let (body, header) = TestDelivery::new(secret, PAID)
        .id(id)
        .object(serde_json::json!({"id": format!("inv_{id}"), "total": 4200, "holder": MARKER}))
        .into_parts();
    let req = RawRequest::post(path, body.to_vec()).header("X-Plugipay-Signature", header.clone());
    let status = send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status);
    (status, header)
}

#[test]
fn the_logs_tell_each_events_story_and_never_hold_a_body_or_a_signature() {
    let Some(base) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(fresh_schema(&base));
    let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
    let (via, _) = through(&url, proxy.addr);
    let log = std::env::temp_dir().join(format!("plugipay-logs-{}.txt", std::process::id()));
    let mut cmd = Command::new(bin("axum"));
    cmd.env("PLUGIPAY_WEBHOOK_SECRET", SECRET)
        .env("PORT", "0")
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("PLUGIPAY_TENANT_SECRETS", "acme=whsec_acme_logs")
        .env("PLUGIPAY_INBOX_URL", &via)
        .env("PLUGIPAY_INBOX_WORKERS", "1")
        .env("PLUGIPAY_INBOX_RETRY_BASE_MS", "200")
        .env("PLUGIPAY_EXAMPLE_FAIL_FIRST", "1")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let rx = Process::spawn(cmd);
    let addr = rx.listening_addr();
    let mut signatures = Vec::new();
    // A delivery for a tenant: stored, fails once, retried, done.
    let (status, sig) = deliver(
        addr,
        "/tenants/acme/webhooks/plugipay",
        "whsec_acme_logs",
        "evt_logs_1",
    );
    assert_eq!(status, 202);
    signatures.push(sig);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while !out
        .iter()
        .any(|l: &String| l.starts_with("handled evt_logs_1"))
    {
        assert!(Instant::now() < deadline, "not done: {out:?}");
        out.extend(rx.drain(Duration::from_millis(200)));
    }
    // An outage: deliveries refused while PostgreSQL is down, then back.
    proxy.set(Mode::Down);
    for i in 0..3 {
        let (status, sig) = deliver(addr, "/webhooks/plugipay", SECRET, &format!("evt_down_{i}"));
        assert_eq!(status, 503);
        signatures.push(sig);
    }
    proxy.set(Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, sig) = deliver(addr, "/webhooks/plugipay", SECRET, "evt_back");
        signatures.push(sig);
        if status == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "never back");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(rx);
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(
        text.lines().count() > 50,
        "trace logging was on: {} lines",
        text.lines().count()
    );

    // Never the body, never a signature — at trace, with the drivers' own
    // logging on.
    assert!(!text.contains(MARKER), "a body in the logs");
    for sig in &signatures {
        let mac = sig.rsplit("v1=").next().unwrap();
        assert!(!text.contains(mac), "a signature in the logs");
    }
    assert!(!text.contains("whsec_"), "a secret in the logs");

    // The story, a line per milestone, with id, type and tenant as fields.
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let has = |needles: &[&str]| info.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    let id = "id=\"evt_logs_1\"";
    assert!(
        has(&["plugipay event stored", id, "tenant=\"acme\""]),
        "stored:\n{}",
        info.join("\n")
    );
    assert!(
        has(&[
            "plugipay event retry",
            id,
            "attempt 1 of 10 failed; again in",
            "PLUGIPAY_EXAMPLE_FAIL_FIRST"
        ]),
        "retry:\n{}",
        info.join("\n")
    );
    assert!(
        has(&[
            "plugipay event done",
            id,
            "attempts=2",
            "since_received_ms="
        ]),
        "done:\n{}",
        info.join("\n")
    );
    assert!(
        has(&["inbox unavailable since", "connect"]),
        "outage:\n{}",
        info.join("\n")
    );
    assert!(
        has(&["inbox available again after", "deliveries refused"]),
        "recovery:\n{}",
        info.join("\n")
    );
    let refused_lines = info.iter().filter(|l| l.contains("not stored")).count();
    assert_eq!(
        refused_lines,
        0,
        "one line per refused delivery at info:\n{}",
        info.join("\n")
    );
}
