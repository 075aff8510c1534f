//! At-least-once made safe, end to end: several receiver processes (different
//! frameworks) sharing one real Redis or PostgreSQL, a receiver killed
//! mid-handler, a SQLite-backed receiver restarted.
//!
//! The servers come from `scripts/services` (run by `scripts/test`); without
//! them these tests fail, unless `PLUGIPAY_TEST_NO_SERVERS=1` says none exist.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};

const SECRET: &str = "whsec_dedup_tests";
const ROUTE: &str = "/webhooks/plugipay";

mod common;
use common::{server_url, Running};

fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

fn request(body: &[u8], header: &str) -> RawRequest {
    RawRequest::post(ROUTE, body.to_vec()).header("X-Plugipay-Signature", header)
}

/// Delivers like Plugipay: retries 409 and 503 until a 2xx (a short pause
/// here instead of `Retry-After`'s 5 s). Returns the final status and the
/// number of 409s seen.
fn deliver_until_acknowledged(addr: SocketAddr, d: &TestDelivery) -> (u16, usize) {
    let mut conflicts = 0;
    for _ in 0..500 {
        // Every attempt signed afresh.
        let (body, header) = d.clone().into_parts();
        match send(addr, &request(&body, &header), Duration::from_secs(30)) {
            Ok(r) if r.status == 409 || r.status == 503 => {
                conflicts += usize::from(r.status == 409);
                std::thread::sleep(Duration::from_millis(25));
            }
            Ok(r) => return (r.status, conflicts),
            Err(e) => panic!("delivery failed: {e}"),
        }
    }
    (0, conflicts)
}

fn shared_store_runs_each_event_once(store_url: &str, label: &str) {
    let tag = run_tag();
    let env = [
        ("PLUGIPAY_DEDUP_URL", store_url),
        // Handlers take a moment, so redeliveries really overlap.
        ("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", "20"),
    ];
    let receivers: Vec<Running> = [
        env!("CARGO_BIN_EXE_axum"),
        env!("CARGO_BIN_EXE_actix-web"),
        env!("CARGO_BIN_EXE_rocket"),
        env!("CARGO_BIN_EXE_warp"),
    ]
    .iter()
    .map(|bin| Running::start(bin, SECRET, &env))
    .collect();
    let addrs: Vec<SocketAddr> = receivers.iter().map(|r| r.addr).collect();

    // 200 distinct events, each delivered 5 times, interleaved across the 4
    // processes and sent by 16 concurrent senders.
    let events: Vec<TestDelivery> = (0..200)
        .map(|i| {
            TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
                .id(format!("evt_{label}_{tag}_{i:03}"))
        })
        .collect();
    // The five deliveries of an event are neighbours in the plan, so five of
    // the senders pick them up at the same moment, each to another process.
    let mut plan: Vec<(usize, usize)> = Vec::new();
    for e in 0..events.len() {
        for round in 0..5 {
            plan.push((e, (e + round) % addrs.len()));
        }
    }
    let next = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..16 {
            let (next, conflicts, plan, events, addrs) =
                (&next, &conflicts, &plan, &events, &addrs);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(e, r)) = plan.get(i) else { break };
                let (status, c) = deliver_until_acknowledged(addrs[r], &events[e]);
                assert_eq!(status, 204, "{label}: delivery {i}");
                conflicts.fetch_add(c, Ordering::Relaxed);
            });
        }
    });
    let elapsed = started.elapsed();

    let mut handled: HashMap<String, usize> = HashMap::new();
    let mut duplicates = 0;
    for r in &receivers {
        for line in r.drain() {
            if let Some(rest) = line.strip_prefix("handled ") {
                *handled
                    .entry(rest.split(' ').next().unwrap_or_default().to_owned())
                    .or_default() += 1;
            } else if line.starts_with("duplicate ") {
                duplicates += 1;
            }
        }
    }
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "{label}: handled more than once: {twice:?}"
    );
    assert_eq!(handled.len(), 200, "{label}: every event handled");
    assert_eq!(
        duplicates, 800,
        "{label}: the other deliveries are duplicates"
    );
    println!(
        "{label}: 4 processes (axum, actix-web, rocket, warp), 200 events x 5 deliveries: \
         200 handled exactly once, 800 duplicates, {} answered 409 in_progress and retried, {:.1} s",
        conflicts.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
}

#[test]
fn four_processes_sharing_redis_handle_each_event_exactly_once() {
    if let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") {
        shared_store_runs_each_event_once(&url, "redis");
    }
}

#[test]
fn four_processes_sharing_postgres_handle_each_event_exactly_once() {
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        shared_store_runs_each_event_once(&url, "postgres");
    }
}

fn killed_mid_handler(store_url: &str, label: &str) {
    let tag = run_tag();
    let env = [
        ("PLUGIPAY_DEDUP_URL", store_url),
        ("PLUGIPAY_DEDUP_LEASE_MS", "3000"),
        ("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", "1000"),
    ];
    let mut doomed = Running::start(env!("CARGO_BIN_EXE_axum"), SECRET, &env);
    let survivor = Running::start(env!("CARGO_BIN_EXE_warp"), SECRET, &env);
    let d = TestDelivery::new(SECRET, "plugipay.refund.succeeded.v1")
        .id(format!("evt_kill_{label}_{tag}"));

    // The first delivery claims the event; its receiver dies mid-handler.
    let (body, header) = d.clone().into_parts();
    let addr = doomed.addr;
    let claimed_at = Instant::now();
    let first =
        std::thread::spawn(move || send(addr, &request(&body, &header), Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    doomed.process.child.kill().expect("kill -9");
    let _ = doomed.process.child.wait();
    assert!(
        first.join().expect("join").is_err(),
        "the killed receiver cannot answer"
    );
    assert!(
        doomed.drain().is_empty(),
        "{label}: it died before handling"
    );

    // Plugipay retries: while the dead claim's lease lasts, in progress…
    let (body, header) = d.clone().into_parts();
    let r = send(
        survivor.addr,
        &request(&body, &header),
        Duration::from_secs(10),
    )
    .expect("answer");
    assert_eq!(
        (r.status, r.text()),
        (409, r#"{"error":"in_progress"}"#.to_owned()),
        "{label}"
    );

    // …and after it, the retry runs the handler, once.
    std::thread::sleep(Duration::from_millis(3200).saturating_sub(claimed_at.elapsed()));
    let (status, _) = deliver_until_acknowledged(survivor.addr, &d);
    assert_eq!(status, 204, "{label}");
    let (status, _) = deliver_until_acknowledged(survivor.addr, &d);
    assert_eq!(status, 204, "{label}");
    let lines = survivor.drain();
    assert_eq!(
        lines,
        [
            format!("handled {} plugipay.refund.succeeded.v1", d.event_id()),
            format!("duplicate {}", d.event_id())
        ],
        "{label}"
    );
}

#[test]
fn a_receiver_killed_mid_handler_loses_its_claim_after_the_lease_redis() {
    if let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") {
        killed_mid_handler(&url, "redis");
    }
}

#[test]
fn a_receiver_killed_mid_handler_loses_its_claim_after_the_lease_postgres() {
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        killed_mid_handler(&url, "postgres");
    }
}

#[test]
fn a_sqlite_backed_receiver_remembers_across_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "plugipay-dedup-{}-{}",
        std::process::id(),
        run_tag()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = format!("sqlite://{}", dir.join("events.sqlite3").display());
    let env = [("PLUGIPAY_DEDUP_URL", url.as_str())];
    let before = TestDelivery::new(SECRET, "plugipay.customer.created.v1").id("evt_before_restart");
    {
        let rx = Running::start(env!("CARGO_BIN_EXE_axum"), SECRET, &env);
        assert_eq!(deliver_until_acknowledged(rx.addr, &before).0, 204);
        assert_eq!(
            rx.drain(),
            ["handled evt_before_restart plugipay.customer.created.v1"]
        );
    } // killed here
    let rx = Running::start(env!("CARGO_BIN_EXE_axum"), SECRET, &env);
    assert_eq!(deliver_until_acknowledged(rx.addr, &before).0, 204);
    let after = TestDelivery::new(SECRET, "plugipay.customer.created.v1").id("evt_after_restart");
    assert_eq!(deliver_until_acknowledged(rx.addr, &after).0, 204);
    assert_eq!(
        rx.drain(),
        [
            "duplicate evt_before_restart",
            "handled evt_after_restart plugipay.customer.created.v1"
        ]
    );
    let _ = std::fs::remove_dir_all(dir);
}
