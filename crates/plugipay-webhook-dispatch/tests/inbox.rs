//! The durable inbox on real SQLite, PostgreSQL and Redis (started by
//! `scripts/services`): store-then-acknowledge, retries with backoff, dead
//! and skipped events, redelivery, transactional handlers, shutdown.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "redis"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{
    current_attempt, Inbox, InboxBackend, PostgresInbox, RedisInbox, RetryFilter, SqlValue,
    SqliteInbox, State,
};
use plugipay_webhook_dispatch::{ClaimToken, Outcome};

const PAID: &str = "plugipay.invoice.paid.v1";

fn event(event_type: &str, id: &str) -> WebhookEvent {
    TestDelivery::new("whsec_inbox", event_type)
        .id(id)
        .object(serde_json::json!({"id": "inv_1", "total": 4200}))
        .verify_with(&Verifier::new("whsec_inbox"))
        .expect("verifies")
}

fn unique(name: &str) -> String {
    format!("{name}_{}", &ClaimToken::new().as_str()[..12])
}

/// Each backend, fresh (its own table or file).
async fn backends() -> Vec<(&'static str, InboxBackend, Option<String>)> {
    let dir = std::env::temp_dir().join(format!("plugipay-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.sqlite3", unique("inbox")));
    let mut v: Vec<(&'static str, InboxBackend, Option<String>)> = vec![(
        "sqlite",
        SqliteInbox::open(&path).expect("sqlite").into(),
        Some(format!("sqlite://{}", path.display())),
    )];
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        let table = unique("inbox");
        let inbox = PostgresInbox::connect_with(&url, &table, Duration::from_secs(5))
            .await
            .expect("postgres");
        v.push(("postgres", inbox.into(), None));
    }
    if let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") {
        let prefix = unique("plugipay:test:inbox");
        let inbox = RedisInbox::connect_with(&url, &prefix, Duration::from_secs(5))
            .await
            .expect("redis");
        v.push(("redis", inbox.into(), None));
    }
    v
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_once_acknowledged_202_then_processed_once() {
    for (name, backend, _) in backends().await {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let inbox = Inbox::builder(backend)
            .on(PAID, move |_e| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                }
            })
            .build()
            .unwrap();
        let ev = event(PAID, &unique("evt"));
        // Stored before any worker runs: acknowledged, nothing processed.
        for _ in 0..3 {
            let outcome = inbox.receive(&ev).await;
            assert_eq!(
                (outcome, outcome.status().as_u16()),
                (Outcome::Stored, 202),
                "{name}"
            );
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            0,
            "{name}: acknowledged before any handler"
        );
        let stats = inbox.stats().await.unwrap();
        assert_eq!(
            stats.count(State::Pending),
            1,
            "{name}: a duplicate adds nothing"
        );
        let workers = inbox.start_workers(2);
        until(name, || runs.load(Ordering::SeqCst) == 1).await;
        until(name, || futures_lite_stats(&inbox).count(State::Done) == 1).await;
        workers.shutdown(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{name}: processed once");
        let records = inbox.get(ev.id()).await.unwrap();
        assert_eq!(
            records[0].body,
            ev.raw_body().clone(),
            "{name}: the exact bytes kept"
        );
        assert_eq!(
            records[0].signature, "",
            "{name}: verified directly, no header"
        );
    }
}

/// Stats, synchronously from a sync closure (polled by `until`).
fn futures_lite_stats(inbox: &Inbox) -> plugipay_webhook_dispatch::inbox::Stats {
    let inbox = inbox.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(inbox.stats())
    })
    .join()
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_go_dead_and_a_redelivery_revives_them() {
    for (name, backend, _) in backends().await {
        let attempts_seen = Arc::new(Mutex::new(Vec::new()));
        let seen = attempts_seen.clone();
        let inbox = Inbox::builder(backend)
            .max_attempts(3)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(40))
            .poll_interval(Duration::from_millis(20))
            .on(PAID, move |e: WebhookEvent| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push((e.id().to_owned(), current_attempt()));
                    if e.id().starts_with("evt_flaky") && current_attempt() == Some(3) {
                        return Ok(());
                    }
                    Err(std::io::Error::other("downstream unavailable"))
                }
            })
            .build()
            .unwrap();
        let flaky = event(PAID, &unique("evt_flaky"));
        let broken = event(PAID, &unique("evt_broken"));
        inbox.receive(&flaky).await;
        inbox.receive(&broken).await;
        let workers = inbox.start_workers(2);
        until(name, || {
            let s = futures_lite_stats(&inbox);
            s.count(State::Done) == 1 && s.count(State::Dead) == 1
        })
        .await;
        let seen = attempts_seen.lock().unwrap().clone();
        let flaky_attempts: Vec<Option<u32>> = seen
            .iter()
            .filter(|(id, _)| id == flaky.id())
            .map(|(_, a)| *a)
            .collect();
        assert_eq!(
            flaky_attempts,
            [Some(1), Some(2), Some(3)],
            "{name}: the attempt is visible"
        );
        let dead = inbox.list(Some(State::Dead), None, 10).await.unwrap();
        assert_eq!(dead[0].id, broken.id(), "{name}");
        assert_eq!(dead[0].attempts, 3, "{name}");
        assert!(
            dead[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("downstream unavailable"),
            "{name}"
        );

        // Plugipay's portal Replay: a redelivery of a dead event makes it
        // pending with its attempts reset; of a done one it changes nothing.
        assert_eq!(inbox.receive(&broken).await, Outcome::Stored);
        assert_eq!(inbox.receive(&flaky).await, Outcome::Stored);
        until(name, || futures_lite_stats(&inbox).count(State::Dead) == 1).await;
        let again = inbox.get(broken.id()).await.unwrap();
        assert_eq!(
            again[0].attempts, 3,
            "{name}: dead again after three fresh attempts"
        );
        assert_eq!(
            inbox.get(flaky.id()).await.unwrap()[0].state,
            State::Done,
            "{name}"
        );
        // retry --dead: pending again.
        let moved = inbox
            .retry(&RetryFilter {
                dead: true,
                ..RetryFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(moved, 1, "{name}");
        workers.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_are_skipped_then_processed_after_a_handler_is_deployed() {
    for (name, backend, _) in backends().await {
        let before = Inbox::builder(backend.clone()).build().unwrap();
        let ev = event("plugipay.brand.new.v1", &unique("evt"));
        assert_eq!(before.receive(&ev).await, Outcome::Stored, "{name}");
        assert_eq!(
            before.stats().await.unwrap().count(State::Skipped),
            1,
            "{name}"
        );
        // Deploy a handler, then `retry --skipped --type T`.
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let after = Inbox::builder(backend)
            .poll_interval(Duration::from_millis(20))
            .on("plugipay.brand.new.v1", move |_e| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                }
            })
            .build()
            .unwrap();
        let workers = after.start_workers(1);
        let moved = after
            .retry(&RetryFilter {
                skipped: true,
                event_type: Some("plugipay.brand.new.v1".into()),
                ..RetryFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(moved, 1, "{name}");
        until(name, || runs.load(Ordering::SeqCst) == 1).await;
        workers.shutdown(Duration::from_secs(5)).await;
        // Pruning removes done and skipped records only.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            after.prune(Duration::from_millis(1)).await.unwrap() >= 1,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_handler_commits_with_done_and_rolls_back_with_failure() {
    for (name, backend, sqlite_url) in backends().await {
        if name == "redis" {
            // Not transactional: refused when the inbox is built, not at run time.
            let refused = Inbox::builder(backend)
                .on_tx(PAID, |_tx, _event| Box::pin(async { Ok(()) }))
                .build()
                .expect_err("redis refuses on_tx");
            assert!(
                refused.to_string().contains("not transactional"),
                "{refused}"
            );
            continue;
        }
        let ledger = unique("ledger");
        // The ledger lives in the inbox's own database.
        let create = format!("CREATE TABLE IF NOT EXISTS {ledger} (event_id TEXT, amount BIGINT)");
        let insert = format!("INSERT INTO {ledger} (event_id, amount) VALUES ($1, $2)");
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let inbox = Inbox::builder(backend)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
            .poll_interval(Duration::from_millis(20))
            .on_tx(PAID, move |tx, event| {
                let (create, insert, c) = (create.clone(), insert.clone(), c.clone());
                Box::pin(async move {
                    tx.execute(&create, &[]).await?;
                    let total = event.object()["total"].as_i64().unwrap_or(0);
                    tx.execute(
                        &insert,
                        &[SqlValue::from(event.id()), SqlValue::from(total)],
                    )
                    .await?;
                    // The first two attempts fail after writing: rolled back.
                    if c.fetch_add(1, Ordering::SeqCst) < 2 {
                        return Err("failing after the insert".into());
                    }
                    Ok(())
                })
            })
            .build()
            .unwrap();
        let ev = event(PAID, &unique("evt"));
        inbox.receive(&ev).await;
        let workers = inbox.start_workers(2);
        until(name, || futures_lite_stats(&inbox).count(State::Done) == 1).await;
        workers.shutdown(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{name}");
        let rows = count_rows(name, sqlite_url.as_deref(), &ledger).await;
        assert_eq!(
            rows, 1,
            "{name}: exactly one ledger row, the failed attempts rolled back"
        );
    }
}

async fn count_rows(name: &str, sqlite_url: Option<&str>, table: &str) -> i64 {
    match sqlite_url {
        Some(url) => {
            let path = url.trim_start_matches("sqlite://");
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        }
        None => {
            let url = server_url("PLUGIPAY_TEST_POSTGRES_URL").expect(name);
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get(0)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_handler_leaves_a_lease_that_lapses() {
    for (name, backend, _) in backends().await {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let inbox = Inbox::builder(backend)
            .lease(Duration::from_millis(600))
            .handler_timeout(Duration::from_millis(300))
            .poll_interval(Duration::from_millis(20))
            .on(PAID, move |_e| {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        // The first run hangs: its worker is abandoned below.
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, std::io::Error>(())
                }
            })
            .build()
            .unwrap();
        let ev = event(PAID, &unique("evt"));
        inbox.receive(&ev).await;
        let first = inbox.start_workers(1);
        until(name, || runs.load(Ordering::SeqCst) == 1).await;
        // Abandon it at once (as if the process died): nothing is recorded.
        first.shutdown(Duration::ZERO).await;
        assert_eq!(
            futures_lite_stats(&inbox).count(State::Running),
            1,
            "{name}"
        );
        let second = inbox.start_workers(1);
        until(name, || futures_lite_stats(&inbox).count(State::Done) == 1).await;
        second.shutdown(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{name}");
        assert_eq!(inbox.get(ev.id()).await.unwrap()[0].attempts, 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_inbox_is_503_never_a_2xx() {
    let dir = std::env::temp_dir().join(format!("plugipay-inbox-locked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locked.sqlite3");
    let backend =
        SqliteInbox::open_with(&path, "plugipay_webhook_inbox", Duration::from_millis(300))
            .unwrap();
    let inbox = Inbox::builder(backend)
        .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
        .build()
        .unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let outcome = inbox.receive(&event(PAID, "evt_locked")).await;
    assert_eq!(
        (outcome, outcome.status().as_u16()),
        (Outcome::StoreUnavailable, 503)
    );
    assert_eq!(outcome.body(), r#"{"error":"store_unavailable"}"#);
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(
        inbox.receive(&event(PAID, "evt_locked")).await,
        Outcome::Stored
    );
}

/// A PostgreSQL or Redis that accepts connections and never answers, then stops:
/// every delivery is answered 503 within the store timeout (never a 2xx,
/// never hung), and the inbox recovers by itself once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_stopped_postgres_or_redis_inbox_is_503_within_the_timeout() {
    use plugipay_webhook_conformance::plumbing::{through, Proxy};
    for var in ["PLUGIPAY_TEST_POSTGRES_URL", "PLUGIPAY_TEST_REDIS_URL"] {
        let Some(url) = server_url(var) else {
            continue;
        };
        let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
        let (via, _) = through(&url, proxy.addr);
        let timeout = Duration::from_millis(500);
        let backend: InboxBackend = if var.contains("POSTGRES") {
            PostgresInbox::connect_with(&via, &unique("inbox"), timeout)
                .await
                .expect("connect")
                .into()
        } else {
            RedisInbox::connect_with(&via, &unique("plugipay:test:inbox"), timeout)
                .await
                .expect("connect")
                .into()
        };
        silent_then_stopped(var, &proxy, backend).await;
    }
}

async fn silent_then_stopped(
    name: &str,
    proxy: &plugipay_webhook_conformance::plumbing::Proxy,
    backend: InboxBackend,
) {
    use plugipay_webhook_conformance::plumbing::Mode;
    let inbox = Inbox::builder(backend)
        .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
        .build()
        .unwrap();
    assert_eq!(
        inbox.receive(&event(PAID, &unique("evt"))).await,
        Outcome::Stored,
        "{name}"
    );
    for mode in [Mode::Silent, Mode::Down] {
        proxy.set(mode);
        let answered = tokio::time::timeout(
            Duration::from_secs(20),
            inbox.receive(&event(PAID, &unique("evt"))),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} {mode:?}: the delivery hung"));
        assert_eq!(answered, Outcome::StoreUnavailable, "{name} {mode:?}");
    }
    proxy.set(Mode::Up);
    let mut outcome = Outcome::StoreUnavailable;
    for _ in 0..40 {
        outcome = inbox.receive(&event(PAID, &unique("evt"))).await;
        if outcome == Outcome::Stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(outcome, Outcome::Stored, "{name}: recovered");
    assert_eq!(
        inbox.stats().await.unwrap().count(State::Pending),
        2,
        "{name}: only the stored ones"
    );
}
