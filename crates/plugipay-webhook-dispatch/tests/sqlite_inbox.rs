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
        let backend = SqliteInbox::open_with(&db, "plugipay_webhook_inbox", Duration::from_secs(5)).await.unwrap();
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
        let backend = SqliteInbox::open(&db).await.unwrap();
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
#[tokio::test]
async fn a_transactional_handler_cannot_outlast_the_busy_timeout() {
    let db = path("busy");
    let backend = SqliteInbox::open_with(&db, "plugipay_webhook_inbox", Duration::from_secs(2))
        .await
        .unwrap();
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
        let inbox = Inbox::builder(SqliteInbox::open(path("debug")).await.unwrap())
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

/// The application's own repository code, as it is: sqlx on a
/// `&mut SqliteConnection`, with a transaction of its own (which inside
/// the inbox's becomes a savepoint).
mod repo {
    use plugipay_webhook_dispatch::sqlx::{self, Connection, SqliteConnection};

    pub(super) async fn mark_paid(
        conn: &mut SqliteConnection,
        invoice: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO ledger (invoice, times) VALUES (?1, 1)
                     ON CONFLICT (invoice) DO UPDATE SET times = times + 1",
        )
        .bind(invoice)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}

async fn wait_for(inbox: &Inbox, state: State, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox.stats().await.unwrap().count(state) < n {
        assert!(Instant::now() < deadline, "{n} not {state:?} in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// On the application's own sqlx pool: a transactional handler runs the
/// application's repository function in the inbox's transaction (its own
/// `begin()` nests as a savepoint); the write commits with the event's
/// move to done — and a handler that fails after writing leaves nothing.
/// The de-duplication store works on the same pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_applications_pool_a_handler_runs_the_applications_sqlx_code() {
    use plugipay_webhook_dispatch::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use plugipay_webhook_dispatch::{sqlx, Claim, DedupStore, EventKey, SqliteStore};

    let options = SqliteConnectOptions::new()
        .filename(path("app_pool"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let app = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE ledger (invoice TEXT PRIMARY KEY, times INTEGER NOT NULL)")
        .execute(&app)
        .await
        .unwrap();
    let backend = SqliteInbox::from_pool(app.clone(), "plugipay_webhook_inbox")
        .await
        .expect("from_pool");
    let inbox = Inbox::builder(backend)
        .poll_interval(Duration::from_millis(10))
        .max_attempts(1)
        .on_tx(PAID, |tx, e| {
            let id = e.id().to_owned();
            Box::pin(async move {
                repo::mark_paid(tx.sqlite().expect("a SQLite inbox"), &id).await?;
                // The same statement through the driver-neutral call,
                // with its parameters numbered out of order.
                tx.execute(
                    "UPDATE ledger SET times = times + $2 WHERE invoice = $1",
                    &[id.as_str().into(), 10i64.into()],
                )
                .await?;
                if id.starts_with("evt_fail") {
                    return Err("failed after writing".into());
                }
                Ok(())
            })
        })
        .build()
        .unwrap();
    for id in ["evt_ok_1", "evt_ok_2", "evt_fail_1"] {
        assert_eq!(
            inbox.receive(&event(id)).await,
            plugipay_webhook_dispatch::Outcome::Stored
        );
    }
    let workers = inbox.start_workers(2);
    wait_for(&inbox, State::Done, 2).await;
    wait_for(&inbox, State::Dead, 1).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT invoice, times FROM ledger ORDER BY invoice")
            .fetch_all(&app)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [("evt_ok_1".to_owned(), 11), ("evt_ok_2".to_owned(), 11)],
        "each done event's writes once, the failed one's none"
    );

    let store = SqliteStore::from_pool(app.clone(), "plugipay_webhook_events")
        .await
        .expect("store on the pool");
    let key = EventKey {
        tenant: String::new(),
        id: "evt_store".into(),
        event_type: PAID.into(),
    };
    let Claim::Acquired(token) = store.claim(&key, Duration::from_secs(30)).await.unwrap() else {
        panic!("a fresh key is acquired");
    };
    assert!(store
        .complete(&key, &token, Duration::from_secs(60))
        .await
        .unwrap());
    assert!(matches!(
        store.claim(&key, Duration::from_secs(30)).await.unwrap(),
        Claim::Done
    ));
}

/// An in-memory database is one per connection: the inbox's workers would
/// never see what receiving stored. Refused, saying so.
#[tokio::test]
async fn an_in_memory_pool_is_refused() {
    use plugipay_webhook_dispatch::sqlx::sqlite::SqlitePoolOptions;
    let pool = SqlitePoolOptions::new()
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let err = SqliteInbox::from_pool(pool.clone(), "plugipay_webhook_inbox")
        .await
        .expect_err("in memory");
    assert!(err.to_string().contains("in memory"), "{err}");
    let err = plugipay_webhook_dispatch::SqliteStore::from_pool(pool, "plugipay_webhook_events")
        .await
        .expect_err("in memory");
    assert!(err.to_string().contains("in memory"), "{err}");
}
