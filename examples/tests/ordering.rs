//! Per-object ordering with the example receivers as processes, on
//! PostgreSQL and SQLite: a shuffled burst of many objects' events, with
//! duplicates, sent to three receivers while one is SIGKILLed and
//! restarted. With `PLUGIPAY_INBOX_ORDERED=1` and a reorder window every
//! event is applied once, per object in `occurred_at` order, no two runs of
//! one object overlapping (`example_applied`'s `started_ms`/`finished_ms`);
//! without a window, late events are `stale` and never applied after a
//! newer one; unordered, the same burst shows the violations — so the
//! checks can fail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};

mod common;
use common::{bin, server_url, tag, Running};

const SECRET: &str = "whsec_ordering_tests";
const TYPES: [&str; 2] = [
    "plugipay.subscription.cancelled.v1",
    "plugipay.invoice.paid.v1",
];
const OBJECTS: u32 = 12;
const PER_OBJECT: u32 = 5;

/// One applied row.
#[derive(Debug, Clone)]
struct Applied {
    object: String,
    event: String,
    occurred_at: String,
    started_ms: i64,
    finished_ms: i64,
}

/// Where the receivers' inbox is, and how the test reads it.
enum Db {
    Postgres {
        url: String,
        client: tokio_postgres::Client,
        rt: Box<tokio::runtime::Runtime>,
    },
    Sqlite {
        url: String,
        path: std::path::PathBuf,
    },
}

impl Db {
    fn postgres(base: &str) -> Db {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (url, client) = rt.block_on(async {
            let url = common::fresh_schema(base).await;
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("postgres");
            tokio::spawn(conn);
            (url, client)
        });
        Db::Postgres {
            url,
            client,
            rt: Box::new(rt),
        }
    }

    fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("plugipay-ordering-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.sqlite3", tag()));
        Db::Sqlite {
            url: format!("sqlite://{}", path.display()),
            path,
        }
    }

    fn url(&self) -> &str {
        match self {
            Db::Postgres { url, .. } | Db::Sqlite { url, .. } => url,
        }
    }

    /// The applied rows, and each event's state (empty while the tables do
    /// not exist yet).
    fn read(&self) -> (Vec<Applied>, HashMap<String, String>) {
        const APPLIED: &str =
            "SELECT object_id, event_id, occurred_at, started_ms, finished_ms FROM example_applied";
        const STATES: &str = "SELECT event_id, state FROM plugipay_webhook_inbox";
        match self {
            Db::Postgres { client, rt, .. } => rt.block_on(async {
                let applied = client
                    .query(APPLIED, &[])
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|r| Applied {
                                object: r.get(0),
                                event: r.get(1),
                                occurred_at: r.get(2),
                                started_ms: r.get(3),
                                finished_ms: r.get(4),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let states = client
                    .query(STATES, &[])
                    .await
                    .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                    .unwrap_or_default();
                (applied, states)
            }),
            Db::Sqlite { path, .. } => {
                let Ok(conn) = rusqlite::Connection::open(path) else {
                    return Default::default();
                };
                let _ = conn.busy_timeout(Duration::from_secs(5));
                let applied = conn
                    .prepare(APPLIED)
                    .and_then(|mut q| {
                        q.query_map([], |r| {
                            Ok(Applied {
                                object: r.get(0)?,
                                event: r.get(1)?,
                                occurred_at: r.get(2)?,
                                started_ms: r.get(3)?,
                                finished_ms: r.get(4)?,
                            })
                        })?
                        .collect()
                    })
                    .unwrap_or_default();
                let states = conn
                    .prepare(STATES)
                    .and_then(|mut q| q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                    .unwrap_or_default();
                (applied, states)
            }
        }
    }
}

/// Event `seq` of object `object`: it happened `seq` seconds into the day;
/// every object has events of two types (so ordering is by object, across
/// types).
fn delivery(run: &str, object: u32, seq: u32) -> (String, TestDelivery) {
    let id = format!("evt_{run}_{object}_{seq}");
    let d = TestDelivery::new(SECRET, TYPES[(seq % 2) as usize])
        .id(&id)
        .occurred_at(Some(&format!("2026-12-04T10:00:{seq:02}Z")))
        .object(serde_json::json!({"id": format!("obj_{run}_{object}"), "total": seq}));
    (id, d)
}

fn post(addr: SocketAddr, d: &TestDelivery) -> u16 {
    let (body, header) = d.clone().into_parts();
    let req = RawRequest::post("/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status)
}

/// What one run of the burst came to.
struct Outcome {
    acknowledged: HashSet<String>,
    applied: Vec<Applied>,
    states: HashMap<String, String>,
    kills: usize,
}

/// Three receivers on `db`; the burst — `OBJECTS` × `PER_OBJECT` events in a
/// shuffled order, every fourth delivered twice — from three senders, with
/// receiver 0 SIGKILLed and restarted halfway; then waits until nothing is
/// pending or running.
fn run_burst(db: &Db, ordered: bool, window_ms: u64) -> Outcome {
    let window = window_ms.to_string();
    let mut env = vec![
        ("PLUGIPAY_INBOX_URL", db.url()),
        ("PLUGIPAY_INBOX_WORKERS", "2"),
        ("PLUGIPAY_INBOX_LEASE_MS", "1500"),
        ("PLUGIPAY_INBOX_RETRY_BASE_MS", "50"),
        ("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", "25"),
        ("PLUGIPAY_EXAMPLE_QUIET", "1"),
        ("PLUGIPAY_INBOX_REORDER_WINDOW_MS", window.as_str()),
    ];
    if ordered {
        env.push(("PLUGIPAY_INBOX_ORDERED", "1"));
    }
    let names = ["axum", "actix-web", "warp"];
    let receivers: Arc<Mutex<Vec<Option<Running>>>> = Arc::new(Mutex::new(
        names
            .iter()
            .map(|n| Some(Running::start(bin(n), SECRET, &env)))
            .collect(),
    ));
    let run = tag();
    // A fixed shuffle: a linear congruential walk over the burst.
    let mut burst: Vec<(u32, u32)> = (0..OBJECTS)
        .flat_map(|o| (0..PER_OBJECT).map(move |s| (o, s)))
        .collect();
    let mut x: u64 = 0x2545_f491;
    for i in (1..burst.len()).rev() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        burst.swap(i, (x >> 33) as usize % (i + 1));
    }
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let burst = Arc::new(burst);
    let senders: Vec<_> = (0..3usize)
        .map(|t| {
            let (receivers, acknowledged, burst, sent, run) = (
                receivers.clone(),
                acknowledged.clone(),
                burst.clone(),
                sent.clone(),
                run.clone(),
            );
            std::thread::spawn(move || {
                for (n, (object, seq)) in burst.iter().enumerate().skip(t).step_by(3) {
                    let (id, d) = delivery(&run, *object, *seq);
                    let copies = if n % 4 == 0 { 2 } else { 1 };
                    for copy in 0..copies {
                        let deadline = Instant::now() + Duration::from_secs(20);
                        let mut k = t + copy;
                        loop {
                            let live: Vec<SocketAddr> = receivers
                                .lock()
                                .unwrap()
                                .iter()
                                .flatten()
                                .map(|r| r.addr)
                                .collect();
                            if !live.is_empty() && post(live[k % live.len()], &d) == 202 {
                                acknowledged.lock().unwrap().insert(id.clone());
                                break;
                            }
                            assert!(Instant::now() < deadline, "{id} never acknowledged");
                            k += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Halfway through: SIGKILL receiver 0 (handlers in flight die with
    // their transactions), then a fresh one.
    let total = burst.len();
    let mut kills = 0;
    while sent.load(std::sync::atomic::Ordering::SeqCst) < total / 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = receivers.lock().unwrap()[0].take();
    drop(killed);
    kills += 1;
    let fresh = Running::start(bin(names[0]), SECRET, &env);
    receivers.lock().unwrap()[0] = Some(fresh);
    for s in senders {
        s.join().expect("sender");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), total, "every event acknowledged");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (applied, states) = db.read();
        let settled = acknowledged.iter().all(|id| {
            states
                .get(id)
                .is_some_and(|s| s != "pending" && s != "running")
        });
        if settled {
            drop(receivers);
            return Outcome {
                acknowledged,
                applied,
                states,
                kills,
            };
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} states",
            states.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Per object: an applied event that happened before one applied earlier,
/// and runs that overlap.
fn violations(applied: &[Applied]) -> Vec<String> {
    let mut by_object: BTreeMap<&str, Vec<&Applied>> = BTreeMap::new();
    for a in applied {
        by_object.entry(&a.object).or_default().push(a);
    }
    let mut out = Vec::new();
    for (object, mut rows) in by_object {
        rows.sort_by_key(|a| (a.started_ms, a.finished_ms));
        for w in rows.windows(2) {
            if w[1].occurred_at < w[0].occurred_at {
                out.push(format!(
                    "{object}: {} ({}) applied after {} ({})",
                    w[1].event, w[1].occurred_at, w[0].event, w[0].occurred_at
                ));
            }
            if w[1].started_ms < w[0].finished_ms {
                out.push(format!(
                    "{object}: {} started before {} finished",
                    w[1].event, w[0].event
                ));
            }
        }
    }
    out
}

/// Applied at most once each; every acknowledged event applied once or
/// stale.
fn accounted(o: &Outcome, allow_stale: bool) {
    let mut times: HashMap<&str, usize> = HashMap::new();
    for a in &o.applied {
        *times.entry(a.event.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    for id in &o.acknowledged {
        let state = o.states.get(id).map(String::as_str);
        match state {
            Some("done") => assert_eq!(times.get(id.as_str()), Some(&1), "{id} done, not applied"),
            Some("stale") if allow_stale => {
                assert!(!times.contains_key(id.as_str()), "{id} stale and applied")
            }
            other => panic!("{id} ended {other:?}"),
        }
    }
}

fn ordered_with_a_window_applies_everything_in_order(db: &Db) {
    let o = run_burst(db, true, 3000);
    accounted(&o, false);
    let broken = violations(&o.applied);
    assert!(
        broken.is_empty(),
        "{} violations: {broken:#?}",
        broken.len()
    );
    assert_eq!(o.applied.len(), (OBJECTS * PER_OBJECT) as usize);
    assert_eq!(o.kills, 1);
}

fn ordered_without_a_window_never_applies_an_older_event(db: &Db) {
    let o = run_burst(db, true, 0);
    accounted(&o, true);
    let broken = violations(&o.applied);
    assert!(
        broken.is_empty(),
        "{} violations: {broken:#?}",
        broken.len()
    );
    let stale = o.states.values().filter(|s| *s == "stale").count();
    eprintln!(
        "without a window: {} applied, {stale} stale",
        o.applied.len()
    );
}

fn unordered_shows_the_violations(db: &Db) {
    let o = run_burst(db, false, 0);
    accounted(&o, false);
    let broken = violations(&o.applied);
    assert!(
        !broken.is_empty(),
        "an unordered run showed no violation: the ordered checks could not fail"
    );
    eprintln!("unordered: {} violations", broken.len());
}

#[test]
fn postgres_orders_each_objects_events_across_receivers() {
    let Some(base) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    ordered_with_a_window_applies_everything_in_order(&Db::postgres(&base));
    ordered_without_a_window_never_applies_an_older_event(&Db::postgres(&base));
    unordered_shows_the_violations(&Db::postgres(&base));
}

#[test]
fn sqlite_orders_each_objects_events_across_receivers() {
    ordered_with_a_window_applies_everything_in_order(&Db::sqlite());
    ordered_without_a_window_never_applies_an_older_event(&Db::sqlite());
    unordered_shows_the_violations(&Db::sqlite());
}
