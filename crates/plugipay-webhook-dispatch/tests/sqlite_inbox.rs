//! The SQLite inbox's own promises: its statements never run on the async
//! runtime's threads, a commit is durable across a power cut
//! (`synchronous=FULL`), and a transactional handler cannot hold the write
//! lock longer than deliveries wait for it.

#![cfg(feature = "sqlite")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::Verifier;
use plugipay_webhook_dispatch::inbox::{Inbox, SqlValue, SqliteInbox, State};
use plugipay_webhook_dispatch::{ClaimToken, Outcome};

const PAID: &str = "plugipay.invoice.paid.v1";

fn path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plugipay-sqlite-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!(
        "{name}_{}.sqlite3",
        &ClaimToken::new().as_str()[..12]
    ))
}

fn event(id: &str) -> plugipay_webhook::WebhookEvent {
    TestDelivery::new("whsec_s", PAID)
        .id(id)
        .verify_with(&Verifier::new("whsec_s"))
        .unwrap()
}

/// A handler whose statement takes a second of SQLite's time, on a
/// current-thread runtime: a 10 ms timer on the same runtime keeps firing
/// meanwhile (the statement runs on the connection's own thread).
#[test]
fn a_slow_statement_never_stalls_the_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = path("stall");
        let backend = SqliteInbox::open_with(&db, "plugipay_webhook_inbox", Duration::from_secs(5)).unwrap();
        {
            // Sized on this machine so the cross join takes about a second.
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch("CREATE TABLE burn (x INTEGER); CREATE TABLE out (n INTEGER);")
                .unwrap();
            let mut rows = 40;
            loop {
                conn.execute_batch(&format!(
                    "DELETE FROM burn;
                     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
                     INSERT INTO burn SELECT x FROM c;"
                ))
                .unwrap();
                let started = Instant::now();
                let _: i64 = conn
                    .query_row("SELECT count(*) FROM burn a, burn b, burn c", [], |r| r.get(0))
                    .unwrap();
                if started.elapsed() >= Duration::from_millis(800) {
                    break;
                }
                rows = rows * 5 / 4;
            }
        }
        let ran = Arc::new(Mutex::new(None));
        let r = ran.clone();
        let inbox = Inbox::builder(backend)
            .lease(Duration::from_secs(20))
            .handler_timeout(Duration::from_secs(4))
            .poll_interval(Duration::from_millis(10))
            .on_tx(PAID, move |tx, _e| {
                let r = r.clone();
                Box::pin(async move {
                    let started = Instant::now();
                    // A cross join of about a second.
                    tx.execute("INSERT INTO out SELECT count(*) FROM burn a, burn b, burn c", &[])
                        .await?;
                    *r.lock().unwrap() = Some(started.elapsed());
                    Ok(())
                })
            })
            .build()
            .unwrap();
        assert_eq!(inbox.receive(&event("evt_slow")).await, Outcome::Stored);
        let workers = inbox.start_workers(1);
        // A 10 ms tick on the same (only) runtime thread, while it runs.
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        let deadline = Instant::now() + Duration::from_secs(30);
        while ran.lock().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the handler never finished");
            interval.tick().await;
            worst = worst.max(last.elapsed());
            last = Instant::now();
        }
        workers.shutdown(Duration::from_secs(5)).await;
        let took = ran.lock().unwrap().unwrap();
        assert!(took > Duration::from_millis(300), "the statement was not slow ({took:?})");
        assert!(
            worst < took / 2,
            "a 10 ms timer waited {worst:?} while the statement took {took:?}: it ran on the runtime's thread"
        );
    });
}

/// Every connection of the inbox commits with `synchronous=FULL` (2): a
/// commit survives a power cut or an OS crash, so an acknowledged event does.
#[test]
fn commits_are_durable_across_a_power_cut() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = path("sync");
        let backend = SqliteInbox::open(&db).unwrap();
        let inbox = Inbox::builder(backend)
            .poll_interval(Duration::from_millis(10))
            .on_tx(PAID, |tx, _e| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO seen SELECT synchronous FROM pragma_synchronous",
                        &[],
                    )
                    .await?;
                    Ok(())
                })
            })
            .build()
            .unwrap();
        inbox
            .execute("CREATE TABLE IF NOT EXISTS seen (level INTEGER)")
            .await
            .unwrap();
        inbox.receive(&event("evt_sync")).await;
        let workers = inbox.start_workers(1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while inbox.stats().await.unwrap().count(State::Done) < 1 {
            assert!(Instant::now() < deadline, "not processed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        workers.shutdown(Duration::from_secs(5)).await;
        let conn = rusqlite::Connection::open(&db).unwrap();
        let level: i64 = conn
            .query_row("SELECT level FROM seen", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            level, 2,
            "PRAGMA synchronous on the worker's connection (2 = FULL)"
        );
        let _ = SqlValue::Null;
    });
}

/// A transactional handler holds SQLite's write lock; deliveries wait for
/// it up to the store timeout. Its timeout must be shorter — by default half
/// the store timeout — or the inbox refuses to build.
#[test]
fn a_transactional_handler_cannot_outlast_the_busy_timeout() {
    let db = path("busy");
    let backend =
        SqliteInbox::open_with(&db, "plugipay_webhook_inbox", Duration::from_secs(2)).unwrap();
    let refused = Inbox::builder(backend.clone())
        .handler_timeout(Duration::from_secs(2))
        .on_tx(PAID, |_tx, _e| Box::pin(async { Ok(()) }))
        .build()
        .expect_err("a 2 s transactional handler against a 2 s busy timeout");
    let why = refused.to_string();
    assert!(
        why.contains("write lock") && why.contains("store timeout"),
        "{why}"
    );
    let fine = Inbox::builder(backend.clone())
        .on_tx(PAID, |_tx, _e| Box::pin(async { Ok(()) }))
        .build()
        .expect("the default is half the store timeout");
    assert!(
        format!("{fine:?}").contains("handler_timeout: 1s"),
        "{fine:?}"
    );
    // Handlers that hold no lock keep the usual default.
    let plain = Inbox::builder(backend)
        .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
        .build()
        .unwrap();
    assert!(
        format!("{plain:?}").contains("handler_timeout: 30s"),
        "{plain:?}"
    );
}

/// A stored record's `Debug` (what ends up in logs and panics) shows
/// neither the body nor the signature.
#[test]
fn a_records_debug_shows_neither_body_nor_signature() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let inbox = Inbox::builder(SqliteInbox::open(path("debug")).unwrap())
            .build()
            .unwrap();
        let (body, header) = TestDelivery::new("whsec_s", PAID)
            .id("evt_debug")
            .object(serde_json::json!({"id": "inv_1", "card_last4": "4242"}))
            .into_parts();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-plugipay-signature", header.parse().unwrap());
        let stream = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
        let event = plugipay_webhook::http::receive(
            Some(&Verifier::new("whsec_s")),
            &plugipay_webhook::http::HttpHead::new("/", &headers),
            stream,
        )
        .await
        .unwrap();
        inbox.receive(&event).await;
        let record = inbox.get("evt_debug").await.unwrap().remove(0);
        let shown = format!("{record:?}");
        assert!(shown.contains("evt_debug"), "{shown}");
        assert!(
            !shown.contains("4242") && !shown.contains("card_last4"),
            "the body: {shown}"
        );
        assert!(
            !shown.contains(&header) && !shown.contains("v1="),
            "the signature: {shown}"
        );
    });
}
