//! The PostgreSQL inbox and store on databases set up as production runs
//! them, started by `scripts/services`: a TLS-only server (hostssl +
//! scram-sha-256, a CA the script makes) and PgBouncer in transaction
//! pooling mode in front of it. An application's own sqlx pool and
//! repository functions run inside the inbox's transaction; each way a
//! connection can be refused (plaintext against TLS-only, a wrong CA, a
//! hostname mismatch, a bad password) fails with one clear line naming its
//! cause, within the timeout, never showing the password.

#![cfg(feature = "postgres")]

use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{Inbox, PostgresInbox, State, Tx};
use plugipay_webhook_dispatch::sqlx::postgres::{PgPool, PgPoolOptions};
use plugipay_webhook_dispatch::sqlx::{self, PgConnection};
use plugipay_webhook_dispatch::{DedupStore, EventKey, HandlerError, Outcome, PostgresStore};

const SECRET: &str = "whsec_production_databases";
const PAID: &str = "plugipay.invoice.paid.v1";
const PASSWORD: &str = "plugipay-test-pw";

/// Logs to the test's output when `RUST_LOG` asks for them.
fn logs() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, PAID)
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

fn unique(prefix: &str) -> String {
    let n: u32 = std::process::id();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{n}_{t}")
}

/// The application's own repository functions, written for sqlx as an
/// application writes them: they know nothing of the inbox. Unnamed
/// statements (`persistent(false)`), as any application's must be through
/// PgBouncer before 1.21 in transaction mode.
mod repo {
    use super::{sqlx, PgConnection};

    pub(super) async fn create(conn: &mut PgConnection, table: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (event_id TEXT PRIMARY KEY, ssl BOOLEAN NOT NULL, attempt INTEGER NOT NULL)"
        ))
        .persistent(false)
        .execute(conn)
        .await
        .map(drop)
    }

    /// Records the event once; whether this connection is encrypted. In a
    /// transaction of its own, as repository code often is: inside the
    /// inbox's it is a savepoint (it must not commit the inbox's early).
    pub(super) async fn mark_paid(
        conn: &mut PgConnection,
        table: &str,
        event_id: &str,
        attempt: i32,
    ) -> Result<(), sqlx::Error> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        sqlx::query(&format!(
            "INSERT INTO \"{table}\" (event_id, ssl, attempt)
             SELECT $1, COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false), $2"
        ))
        .persistent(false)
        .bind(event_id)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    pub(super) async fn rows(pool: &super::PgPool, table: &str) -> Vec<(String, bool, i32)> {
        sqlx::query_as(&format!(
            "SELECT event_id, ssl, attempt FROM \"{table}\" ORDER BY event_id"
        ))
        .persistent(false)
        .fetch_all(pool)
        .await
        .expect("ledger rows")
    }
}

/// Receives `ids` concurrently (each acknowledged only once stored), runs
/// `workers` workers until every event is settled.
async fn run(inbox: &Inbox, ids: &[String], workers: usize) {
    logs();
    let mut tasks = Vec::new();
    for id in ids {
        let (inbox, id) = (inbox.clone(), id.clone());
        tasks.push(tokio::spawn(
            async move { inbox.receive(&event(&id)).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Outcome::Stored);
    }
    // Five deliveries again: acknowledged ("stored, now or before"); the
    // ledger shows they add no second run.
    for id in ids.iter().take(5) {
        assert_eq!(inbox.receive(&event(id)).await, Outcome::Stored);
    }
    let running = inbox.start_workers(workers);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = inbox.stats().await.expect("stats");
        if stats.count(State::Done) as usize == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all done within 60 s: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown(Duration::from_secs(5)).await;
}

/// The inbox with a transactional handler that calls the application's
/// repository function on the connection inside the inbox's transaction,
/// and fails its first attempt after writing (the write must roll back).
fn ledger_inbox(backend: PostgresInbox, ledger: &str) -> Inbox {
    let ledger = ledger.to_owned();
    Inbox::builder(backend)
        .max_attempts(3)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .on_tx(PAID, move |tx: &mut Tx<'_>, event: WebhookEvent| {
            let ledger = ledger.clone();
            Box::pin(async move {
                let attempt = i32::try_from(tx.attempt()).unwrap_or(i32::MAX);
                let conn = tx.pg().ok_or("a PostgreSQL inbox")?;
                repo::mark_paid(conn, &ledger, event.id(), attempt).await?;
                if attempt == 1 && event.id().ends_with("_3") {
                    return Err::<(), HandlerError>("the first attempt fails after writing".into());
                }
                Ok(())
            })
        })
        .build()
        .expect("inbox")
}

async fn exactly_once(app: &PgPool, ledger: &str, ids: &[String], tls: bool) {
    let rows = repo::rows(app, ledger).await;
    let mut want: Vec<&String> = ids.iter().collect();
    want.sort();
    let got: Vec<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(got, want, "one ledger row per event");
    assert!(
        rows.iter().all(|r| r.1 == tls),
        "every handler's connection encrypted: {tls}"
    );
    // The failed first attempt's write was rolled back with it.
    let retried = rows.iter().find(|r| r.0.ends_with("_3")).expect("event _3");
    assert_eq!(retried.2, 2, "the row written by attempt 1 was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_only_server_url_with_sslmode_and_the_applications_pool() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_TLS_URL") else {
        return;
    };
    let app = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("the application's pool, verify-full against the test CA");
    let ids: Vec<String> = (0..40).map(|i| format!("{}_{i}", unique("tls"))).collect();

    // Opened from the URL (sslmode=verify-full, sslrootcert, SCRAM).
    let (table, ledger) = (unique("inbox_tls"), unique("ledger_tls"));
    repo::create(&mut app.acquire().await.unwrap(), &ledger)
        .await
        .unwrap();
    let backend = PostgresInbox::builder(&url)
        .table(&table)
        .connect()
        .await
        .expect("connects over TLS");
    let inbox = ledger_inbox(backend, &ledger);
    run(&inbox, &ids, 4).await;
    exactly_once(&app, &ledger, &ids, true).await;
    // Listings and one event's page, as the console and the CLI read them.
    assert_eq!(inbox.get(&ids[0]).await.unwrap().len(), 1);

    // On the application's own pool: the same, and the application's pool
    // is given back every connection the inbox borrowed.
    let (table, ledger) = (unique("inbox_pool"), unique("ledger_pool"));
    repo::create(&mut app.acquire().await.unwrap(), &ledger)
        .await
        .unwrap();
    let backend = PostgresInbox::from_pool(app.clone(), &table)
        .await
        .expect("from_pool");
    let inbox = ledger_inbox(backend, &ledger);
    run(&inbox, &ids, 4).await;
    exactly_once(&app, &ledger, &ids, true).await;
    assert!(
        app.size() <= 4,
        "the application's pool stays within its own limit: {}",
        app.size()
    );

    // The de-duplication store too, on a URL and on the pool.
    for store in [
        PostgresStore::connect(&url).await.expect("store over TLS"),
        PostgresStore::from_pool(app.clone(), &unique("dedup_pool"))
            .await
            .expect("store on the pool"),
    ] {
        let key = EventKey {
            tenant: String::new(),
            id: unique("evt"),
            event_type: PAID.to_owned(),
        };
        let claim = store
            .claim(&key, Duration::from_secs(30))
            .await
            .expect("claim");
        let plugipay_webhook_dispatch::Claim::Acquired(token) = claim else {
            panic!("a fresh key is acquired: {claim:?}");
        };
        assert!(store
            .complete(&key, &token, Duration::from_secs(60))
            .await
            .unwrap());
        assert!(matches!(
            store.claim(&key, Duration::from_secs(30)).await.unwrap(),
            plugipay_webhook_dispatch::Claim::Done
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_in_transaction_mode() {
    let Some(url) = server_url("PLUGIPAY_TEST_PGBOUNCER_URL") else {
        return;
    };
    // The application's pool as the docs say to make it for PgBouncer:
    // without the `extra_float_digits` startup parameter PgBouncer refuses.
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let app = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.extra_float_digits(None))
        .await
        .expect("the application's pool through PgBouncer");
    let ids: Vec<String> = (0..60)
        .map(|i| format!("{}_{i}", unique("bouncer")))
        .collect();
    let (table, ledger) = (unique("inbox_bouncer"), unique("ledger_bouncer"));
    repo::create(&mut app.acquire().await.unwrap(), &ledger)
        .await
        .unwrap();
    // Two inboxes on one table start together: the schema is made once
    // under a transaction-level advisory lock (a session lock would be
    // held by whichever server connection PgBouncer picked).
    let (a, b) = tokio::join!(
        PostgresInbox::builder(&url).table(&table).connect(),
        PostgresInbox::builder(&url).table(&table).connect()
    );
    let (a, b) = (a.expect("through PgBouncer"), b.expect("through PgBouncer"));
    let inbox = ledger_inbox(a, &ledger);
    let other = ledger_inbox(b, &ledger);
    let second = other.start_workers(2);
    run(&inbox, &ids, 2).await;
    second.shutdown(Duration::from_secs(5)).await;
    // PgBouncer's server connections are TLS to the server too.
    exactly_once(&app, &ledger, &ids, true).await;
}

/// The error of opening an inbox and a store on `url`, and how long it took.
async fn refused(url: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let inbox = PostgresInbox::builder(url)
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect_err("refused")
        .to_string();
    let store = PostgresStore::builder(url)
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect_err("refused")
        .to_string();
    (inbox, store, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_names_its_cause_within_the_timeout_without_the_password() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_TLS_URL") else {
        return;
    };
    let dir = std::env::var("PLUGIPAY_TEST_TLS_DIR").expect("scripts/services sets it");
    let base = url.split('?').next().unwrap().to_owned();
    let other_ca = format!("{dir}/other-ca.pem");
    let ca = format!("{dir}/ca.pem");
    let cases: Vec<(String, &str)> = vec![
        (format!("{base}?sslmode=disable"), "no encryption"),
        (
            format!("{base}?sslmode=verify-full&sslrootcert={other_ca}"),
            "certificate",
        ),
        // libpq: `require` with a root certificate verifies the chain.
        (
            format!("{base}?sslmode=require&sslrootcert={other_ca}"),
            "certificate",
        ),
        (
            format!(
                "{}?sslmode=verify-full&sslrootcert={ca}",
                base.replace("@localhost:", "@127.0.0.1:")
            ),
            "certificate",
        ),
        (
            format!(
                "{}?sslmode=verify-full&sslrootcert={ca}",
                base.replace(PASSWORD, "not-the-password")
            ),
            "password authentication failed",
        ),
    ];
    for (url, cause) in cases {
        let (inbox, store, took) = refused(&url).await;
        for said in [&inbox, &store] {
            assert!(
                said.contains(cause),
                "{url}: {said:?} does not name {cause:?}"
            );
            assert!(
                !said.contains(PASSWORD) && !said.contains("not-the-password"),
                "a password shown: {said}"
            );
            assert_eq!(said.lines().count(), 1, "one line: {said:?}");
        }
        assert!(took < Duration::from_secs(7), "{url}: {took:?}");
    }
    // The hostname mismatch says which name the certificate is not for.
    let mismatch = format!(
        "{}?sslmode=verify-full&sslrootcert={ca}",
        base.replace("@localhost:", "@127.0.0.1:")
    );
    let (inbox, _, _) = refused(&mismatch).await;
    assert!(
        inbox.contains("not valid for name \"127.0.0.1\""),
        "{inbox}"
    );
    // `require` without a root certificate encrypts without verifying, as
    // libpq does: it connects to the server whose CA it was not given.
    PostgresInbox::connect(&format!("{base}?sslmode=require"))
        .await
        .expect("require: encrypted, not verified");
    // The default (`prefer`) against a TLS-only server: TLS, as libpq.
    PostgresInbox::connect(&base)
        .await
        .expect("prefer upgrades to TLS");
}

/// A stopped server is `connection refused` at once — not a wait for the
/// pool's acquire timeout (sqlx retries a refused connection until then),
/// nor "no connection was free" — the first time and while it stays down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_refused_at_once_with_its_reason() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/app");
    let started = Instant::now();
    let err = PostgresStore::builder(&url)
        .timeout(Duration::from_secs(4))
        .connect()
        .await
        .expect_err("nothing listens")
        .to_string();
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// A call that times out inside a stalled statement (a trigger that
/// sleeps) closes its connection: the pool's slot is free at once, and the
/// next delivery is stored without waiting for the stalled statement — a
/// connection returned to the pool mid-statement would hold the slot until
/// the statement ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_frees_its_pool_slot_at_once() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let table = unique("inbox_stall");
    let inbox = Inbox::builder(
        PostgresInbox::builder(&url)
            .table(&table)
            .connections(1)
            .timeout(Duration::from_secs(1))
            .connect()
            .await
            .expect("inbox"),
    )
    .build()
    .expect("inbox");
    let mut admin = <PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut admin,
        &*format!(
            "CREATE FUNCTION \"{table}_stall\"() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.event_id LIKE 'stall%' THEN PERFORM pg_sleep(4); END IF; RETURN NEW; END $$;
             CREATE TRIGGER stall BEFORE INSERT ON \"{table}\" FOR EACH ROW EXECUTE FUNCTION \"{table}_stall\"()"
        ),
    )
    .await
    .unwrap();
    let started = Instant::now();
    assert_eq!(
        inbox.receive(&event("stall_1")).await,
        Outcome::StoreUnavailable
    );
    assert!(started.elapsed() < Duration::from_millis(1800));
    let next = Instant::now();
    assert_eq!(inbox.receive(&event("after_stall")).await, Outcome::Stored);
    assert!(
        next.elapsed() < Duration::from_millis(900),
        "the next delivery waited {:?} for the stalled connection's slot",
        next.elapsed()
    );
}

/// A transactional handler whose statement stalls past the handler timeout
/// (a lock wait, a slow query): the worker gives its connection up and asks
/// the server to cancel what it was running, so the row lock it held is
/// released and the retry runs at once — not after the stalled statement
/// ends on its own (here 20 s), with the event unclaimable meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handler_statement_is_cancelled_and_the_retry_runs_at_once() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (table, ledger) = (unique("inbox_cancel"), unique("ledger_cancel"));
    let mut admin = <PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    repo::create(&mut admin, &ledger).await.unwrap();
    let backend = PostgresInbox::builder(&url)
        .table(&table)
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("inbox");
    let l = ledger.clone();
    let inbox = Inbox::builder(backend)
        .lease(Duration::from_secs(2))
        .handler_timeout(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .on_tx(PAID, move |tx: &mut Tx<'_>, event: WebhookEvent| {
            let l = l.clone();
            Box::pin(async move {
                let attempt = i32::try_from(tx.attempt()).unwrap_or(i32::MAX);
                let conn = tx.pg().ok_or("a PostgreSQL inbox")?;
                if attempt == 1 {
                    sqlx::query("SELECT pg_sleep(20)")
                        .execute(&mut *conn)
                        .await?;
                }
                repo::mark_paid(conn, &l, event.id(), attempt).await?;
                Ok(())
            })
        })
        .build()
        .expect("inbox");
    let id = unique("stall");
    assert_eq!(inbox.receive(&event(&id)).await, Outcome::Stored);
    let started = Instant::now();
    let workers = inbox.start_workers(1);
    let deadline = started + Duration::from_secs(25);
    while inbox
        .stats()
        .await
        .map(|s| s.count(State::Done))
        .unwrap_or(0)
        < 1
    {
        assert!(Instant::now() < deadline, "never done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    workers.shutdown(Duration::from_secs(5)).await;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{ledger}\""))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 1, "one ledger row");
    assert!(
        took < Duration::from_secs(10),
        "done {took:?} after the stall began: the stalled statement was not cancelled"
    );
}
