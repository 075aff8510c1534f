//! Two handlers of one type in the example receivers, on SQLite,
//! PostgreSQL and Redis: `plugipay.invoice.paid.v1` has `ledger` (the
//! `example_ledger` row, in the inbox's transaction on SQL inboxes) and
//! `notify` (prints `notified <id>`).
//!
//! - `notify` failing its first two attempts: every event is `handled`
//!   once, `notified` once, and (SQL) has exactly one ledger row — the
//!   ledger's success is not rerun for its sibling's retries;
//! - `notify` failing always: one `dead <id> <type> notify` per event and
//!   none for `ledger`, whose row is there once;
//! - then a retry of `notify` alone (with a healed receiver): `notified`
//!   and `handled` once per event, the ledger untouched.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};
use plugipay_webhook_dispatch::inbox::{inbox_from_url, Inbox, RetryFilter};

mod common;
use common::{bin, server_url, tag, Running};

const SECRET: &str = "whsec_handlers_tests";
const PAID: &str = "plugipay.invoice.paid.v1";

fn deliver(addr: std::net::SocketAddr, id: &str) -> u16 {
    let (body, header) = TestDelivery::new(SECRET, PAID)
        .id(id)
        .object(serde_json::json!({"id": format!("inv_{id}"), "total": 4200}))
        .into_parts();
    let req = RawRequest::post("/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status)
}

/// An inbox of this test's own on one backend, and how to count its
/// ledger rows (none on Redis).
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
    Redis(String),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{}", path.display()),
            Db::Postgres(url) | Db::Redis(url) => url.clone(),
        }
    }

    /// Ledger rows per event id (`None` on Redis).
    fn ledger(&self, rt: &tokio::runtime::Runtime) -> Option<HashMap<String, i64>> {
        const SQL: &str = "SELECT event_id, COUNT(*) FROM example_ledger GROUP BY event_id";
        match self {
            Db::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                let mut q = conn.prepare(SQL).unwrap();
                let rows = q
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                Some(rows)
            }
            Db::Postgres(url) => Some(rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .query(SQL, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect()
            })),
            Db::Redis(_) => None,
        }
    }
}

/// Reads stdout lines until `done(lines)` or the deadline.
fn until(rx: &Running, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut lines = Vec::new();
    while !done(&lines) {
        assert!(Instant::now() < deadline, "no {what}: {lines:?}");
        std::thread::sleep(Duration::from_millis(100));
        lines.extend(rx.process.lines.try_iter());
    }
    lines.extend(rx.drain());
    lines
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

fn start(db: &Db, extra: &[(&str, &str)]) -> Running {
    let url = db.url();
    let mut env = vec![
        ("PLUGIPAY_INBOX_URL", url.as_str()),
        ("PLUGIPAY_INBOX_RETRY_BASE_MS", "30"),
    ];
    env.extend_from_slice(extra);
    Running::start(bin("axum"), SECRET, &env)
}

fn run_on(db: &Db) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = tag();

    // `notify` fails twice per event, then succeeds.
    let rx = start(db, &[("PLUGIPAY_EXAMPLE_FAIL_HANDLER", "notify:2")]);
    let ids: Vec<String> = (0..4).map(|i| format!("evt_twice_{t}_{i}")).collect();
    for id in &ids {
        assert_eq!(deliver(rx.addr, id), 202);
    }
    let lines = until(&rx, "four handled", |l| {
        l.iter().filter(|l| l.starts_with("handled ")).count() >= 4
    });
    drop(rx);
    let ledger = db.ledger(&rt);
    for id in &ids {
        assert_eq!(
            count(&lines, &format!("handled {id} {PAID}")),
            1,
            "{lines:?}"
        );
        assert_eq!(count(&lines, &format!("notified {id}")), 1, "{lines:?}");
        if let Some(ledger) = &ledger {
            assert_eq!(ledger.get(id), Some(&1), "{id}: {ledger:?}");
        }
    }
    assert!(!lines.iter().any(|l| l.starts_with("dead ")), "{lines:?}");

    // `notify` fails always: it goes dead, once per event; ledger is done.
    let rx = start(
        db,
        &[
            ("PLUGIPAY_EXAMPLE_FAIL_HANDLER", "notify:1000"),
            ("PLUGIPAY_INBOX_MAX_ATTEMPTS", "3"),
        ],
    );
    let dead: Vec<String> = (0..3).map(|i| format!("evt_dead_{t}_{i}")).collect();
    for id in &dead {
        assert_eq!(deliver(rx.addr, id), 202);
    }
    let mut lines = until(&rx, "three dead", |l| {
        l.iter().filter(|l| l.starts_with("dead ")).count() >= 3
    });
    // Anything more (a second alert) would come within a few retries.
    std::thread::sleep(Duration::from_millis(500));
    lines.extend(rx.drain());
    drop(rx);
    let ledger = db.ledger(&rt);
    for id in &dead {
        assert_eq!(
            count(&lines, &format!("dead {id} {PAID} notify")),
            1,
            "{lines:?}"
        );
        assert_eq!(
            count(&lines, &format!("dead {id} {PAID} ledger")),
            0,
            "{lines:?}"
        );
        assert_eq!(count(&lines, &format!("notified {id}")), 0, "{lines:?}");
        assert_eq!(
            count(&lines, &format!("handled {id} {PAID}")),
            0,
            "{lines:?}"
        );
        if let Some(ledger) = &ledger {
            assert_eq!(ledger.get(id), Some(&1), "{id}: {ledger:?}");
        }
    }

    // A retry of `notify` alone, with notify healed: it runs, ledger not.
    let moved = rt.block_on(async {
        let backend = inbox_from_url(&db.url()).await.expect("inbox");
        let inbox = Inbox::builder(backend).build().expect("inbox");
        inbox
            .retry(&RetryFilter {
                dead: true,
                handler: Some("notify".into()),
                ..RetryFilter::default()
            })
            .await
            .expect("retry")
    });
    assert_eq!(moved, 3);
    let rx = start(db, &[]);
    let lines = until(&rx, "three handled after the retry", |l| {
        l.iter().filter(|l| l.starts_with("handled ")).count() >= 3
    });
    drop(rx);
    let ledger = db.ledger(&rt);
    for id in &dead {
        assert_eq!(count(&lines, &format!("notified {id}")), 1, "{lines:?}");
        assert_eq!(
            count(&lines, &format!("handled {id} {PAID}")),
            1,
            "{lines:?}"
        );
        if let Some(ledger) = &ledger {
            assert_eq!(
                ledger.get(id),
                Some(&1),
                "{id}: the retry reran ledger: {ledger:?}"
            );
        }
    }
}

#[test]
fn sqlite_two_handlers_of_one_type_each_with_their_own_attempts() {
    let dir = std::env::temp_dir().join(format!("plugipay-handlers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run_on(&Db::Sqlite(dir.join(format!("{}.sqlite3", tag()))));
}

#[test]
fn postgres_two_handlers_of_one_type_each_with_their_own_attempts() {
    let Some(base) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(common::fresh_schema(&base));
    run_on(&Db::Postgres(url));
}

#[test]
fn redis_two_handlers_of_one_type_each_with_their_own_attempts() {
    let Some(base) = server_url("PLUGIPAY_TEST_REDIS_URL") else {
        return;
    };
    run_on(&Db::Redis(common::fresh_redis_db(&base, 13)));
}
