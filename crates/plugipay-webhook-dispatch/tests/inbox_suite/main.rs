//! The inbox suite: one table of cases and one runner, run against real
//! SQLite, PostgreSQL and Redis (started by `scripts/services`) — the state
//! machine, and a fault at every transition (claim, done, fail, extend,
//! commit) of each kind (an error, a delay past the store timeout, a dropped
//! connection). After every fault case the invariants are checked:
//!
//! - every acknowledged event ends `done`, `dead` or `skipped` — never lost,
//!   never left `pending` or `running` once workers are alive;
//! - a transactional handler's row exists exactly once for every `done`
//!   event and never for another;
//! - `Done` is reported only for committed work, once;
//! - `receive` answers 202 only for stored events and recovers by itself
//!   within a few seconds of the fault ending.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "redis"))]

mod bed;
mod cases;
mod handlers;
mod listing;
mod model;
mod ordering;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bed::{Bed, Kind, OwnRedis};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{Inbox, Record, State};
use plugipay_webhook_dispatch::Outcome;

pub(crate) const PAID: &str = "plugipay.invoice.paid.v1";
pub(crate) const SECRET: &str = "whsec_suite";

pub(crate) fn event(id: &str) -> WebhookEvent {
    event_of(PAID, id)
}

pub(crate) fn event_of(event_type: &str, id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, event_type)
        .id(id)
        .object(serde_json::json!({"id": format!("inv_{id}"), "total": 4200}))
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

/// What a case saw from the outside.
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    /// Events answered 202.
    pub(crate) acked: BTreeSet<String>,
    /// `Processed::Done` reports per event.
    pub(crate) done_reports: HashMap<String, usize>,
    /// Handler runs per event (started).
    pub(crate) runs: HashMap<String, usize>,
    /// Handler runs that returned `Ok` per event.
    pub(crate) ok_runs: HashMap<String, usize>,
}

pub(crate) type Shared = Arc<Mutex<Seen>>;

/// Delivers `ev` as a sender does: a 503 is retried (every 50 ms) until
/// `deadline`; true once it is acknowledged.
pub(crate) async fn deliver(
    inbox: &Inbox,
    ev: &WebhookEvent,
    seen: &Shared,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        match inbox.receive(ev).await {
            Outcome::Stored => {
                seen.lock().unwrap().acked.insert(ev.id().to_owned());
                return true;
            }
            Outcome::StoreUnavailable if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => return false,
        }
    }
}

/// Every record of the inbox.
pub(crate) async fn records(inbox: &Inbox) -> Vec<Record> {
    for _ in 0..50 {
        if let Ok(r) = inbox.list(None, None, 100_000).await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the inbox does not answer list")
}

/// Waits until every acknowledged event is terminal; the records.
pub(crate) async fn quiescent(
    inbox: &Inbox,
    seen: &Shared,
    within: Duration,
) -> Result<Vec<Record>, String> {
    let deadline = Instant::now() + within;
    loop {
        let all = records(inbox).await;
        let acked = seen.lock().unwrap().acked.clone();
        let open: Vec<String> = all
            .iter()
            .filter(|r| matches!(r.state, State::Pending | State::Running))
            .map(|r| format!("{} {} attempts {}", r.id, r.state, r.attempts))
            .collect();
        let present: BTreeSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
        let lost: Vec<&String> = acked
            .iter()
            .filter(|id| !present.contains(id.as_str()))
            .collect();
        if !lost.is_empty() {
            return Err(format!("acknowledged and lost: {lost:?}"));
        }
        if open.is_empty() {
            return Ok(all);
        }
        if Instant::now() >= deadline {
            return Err(format!("still open after {within:?}: {open:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The invariants every case ends with.
pub(crate) async fn invariants(
    bed: &Bed,
    records: &[Record],
    seen: &Shared,
    ledger: bool,
) -> Vec<String> {
    let mut broken = Vec::new();
    let seen = seen.lock().unwrap().clone();
    let by_id: HashMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    for id in &seen.acked {
        match by_id.get(id.as_str()) {
            None => broken.push(format!("{id}: acknowledged, not stored")),
            Some(r) if !r.state.is_terminal() => broken.push(format!("{id}: left {}", r.state)),
            _ => {}
        }
    }
    for (id, n) in &seen.done_reports {
        if *n > 1 {
            broken.push(format!("{id}: Done reported {n} times"));
        }
        if by_id.get(id.as_str()).map(|r| r.state) != Some(State::Done) {
            broken.push(format!("{id}: Done reported, not done"));
        }
    }
    if ledger {
        let rows = bed.ledger().await;
        for r in records {
            let n = rows.get(&r.id).copied().unwrap_or(0);
            let want = i64::from(r.state == State::Done);
            if n != want {
                broken.push(format!("{}: {} with {n} ledger rows", r.id, r.state));
            }
        }
        for id in rows.keys() {
            if !by_id.contains_key(id.as_str()) {
                broken.push(format!("{id}: a ledger row for no stored event"));
            }
        }
    } else {
        for r in records.iter().filter(|r| r.state == State::Done) {
            if seen.ok_runs.get(&r.id).copied().unwrap_or(0) == 0 {
                broken.push(format!("{}: done, its handler never succeeded", r.id));
            }
        }
    }
    broken
}

/// Logs to stderr when `PLUGIPAY_SUITE_LOG` holds a filter (`warn`,
/// `plugipay_webhook_dispatch=debug`): to see what a failing case did.
pub(crate) fn init_logs() {
    if let Ok(filter) = std::env::var("PLUGIPAY_SUITE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Runs every case of the table on `kind`, and fails listing the cases
/// that broke.
async fn run_suite(kind: Kind) {
    init_logs();
    let redis = match kind {
        Kind::Redis => {
            if server_url("PLUGIPAY_TEST_REDIS_URL").is_none() {
                return;
            }
            Some(Arc::new(OwnRedis::start()))
        }
        Kind::Postgres if server_url("PLUGIPAY_TEST_POSTGRES_URL").is_none() => return,
        _ => None,
    };
    let only = std::env::var("PLUGIPAY_SUITE_ONLY").ok();
    let mut failed = Vec::new();
    for case in cases::all() {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let Some(bed) = Bed::fresh(kind, redis.clone()).await else {
            return;
        };
        let started = Instant::now();
        let result = (case.run)(Arc::new(bed)).await;
        let took = started.elapsed();
        match result {
            Ok(cases::Ran::Passed) => {
                eprintln!("{} {:<44} ok ({took:.1?})", kind.name(), case.name)
            }
            Ok(cases::Ran::NotApplicable(why)) => {
                eprintln!("{} {:<44} n/a: {why}", kind.name(), case.name)
            }
            Err(why) => {
                eprintln!(
                    "{} {:<44} FAILED ({took:.1?}): {why}",
                    kind.name(),
                    case.name
                );
                failed.push(format!("{}: {why}", case.name));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} cases failed on {}:\n{}",
        failed.len(),
        kind.name(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_the_inbox_suite() {
    run_suite(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_the_inbox_suite() {
    run_suite(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_runs_the_inbox_suite() {
    run_suite(Kind::Redis).await;
}
