//! Stores and inboxes whose server stops, or accepts connections and never answers:
//! every delivery is answered 503 within the store's timeout — never hung —
//! and the store recovers by itself when the server is back.
//!
//! A TCP proxy in front of the real PostgreSQL and Redis (started by
//! `scripts/services`) plays the failures: `Up` forwards, `Silent` keeps
//! every connection open and forwards nothing (new ones are accepted and
//! never answered), `Down` closes every connection (a stopped server).

#![cfg(all(
    feature = "memory",
    feature = "sqlite",
    feature = "postgres",
    feature = "redis"
))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_conformance::plumbing::{through, Mode, Proxy};
use plugipay_webhook_dispatch::inbox::{
    Inbox, InboxBackend, PostgresInbox, RedisInbox, SqliteInbox, State,
};
use plugipay_webhook_dispatch::{
    ClaimToken, DedupStore, Dispatcher, Outcome, PostgresStore, RedisStore, SqliteStore,
};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Far above the store's timeout: a call still running then has hung.
const HUNG: Duration = Duration::from_secs(20);

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new("whsec_t", "plugipay.invoice.paid.v1")
        .id(id)
        .verify_with(&Verifier::new("whsec_t"))
        .expect("verifies")
}

fn unique(name: &str) -> String {
    format!("{name}_{}", ClaimToken::new().as_str())
}

/// A dispatcher over `store` counting handler runs.
fn dispatcher(store: Arc<dyn DedupStore>, runs: &Arc<AtomicUsize>) -> Dispatcher {
    let runs = runs.clone();
    Dispatcher::builder_shared(store)
        .on("plugipay.invoice.paid.v1", move |_e| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .expect("build")
}

/// Eight concurrent deliveries: every one answered (not hung), all 503.
async fn all_503(d: &Dispatcher, what: &str) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (d, ev) = (d.clone(), event(&unique("evt")));
            tokio::spawn(async move { tokio::time::timeout(HUNG, d.dispatch(&ev)).await })
        })
        .collect();
    for t in tasks {
        let answered = t.await.expect("join");
        assert_eq!(
            answered.unwrap_or_else(|_| panic!("{what}: a delivery hung")),
            Outcome::StoreUnavailable,
            "{what}"
        );
    }
}

async fn failures_are_503_and_the_store_recovers(
    name: &str,
    proxy: &Proxy,
    store: Arc<dyn DedupStore>,
) {
    let runs = Arc::new(AtomicUsize::new(0));
    let d = dispatcher(store, &runs);
    assert!(d.health().await.is_ok(), "{name}: healthy");
    let first = event(&unique("evt"));
    assert_eq!(d.dispatch(&first).await, Outcome::Handled, "{name}");

    proxy.set(Mode::Silent);
    all_503(&d, &format!("{name}, server silent")).await;
    let health = tokio::time::timeout(HUNG, d.health()).await;
    assert!(
        health.expect("the health check answers").is_err(),
        "{name}: a silent server is unhealthy"
    );

    proxy.set(Mode::Down);
    all_503(&d, &format!("{name}, server stopped")).await;

    proxy.set(Mode::Up);
    let mut outcome = Outcome::StoreUnavailable;
    for _ in 0..40 {
        outcome = d.dispatch(&first).await;
        if outcome != Outcome::StoreUnavailable {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        outcome,
        Outcome::Duplicate,
        "{name}: recovered, and remembers"
    );
    let next = event(&unique("evt"));
    assert_eq!(d.dispatch(&next).await, Outcome::Handled, "{name}");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "{name}: no handler ran while the store was away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_silent_or_stopped_is_503_within_the_timeout_then_recovers() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
    let (via, _) = through(&url, proxy.addr);
    let store = PostgresStore::builder(&via)
        .table(&unique("t"))
        .timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect");
    failures_are_503_and_the_store_recovers("postgres", &proxy, Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_silent_or_stopped_is_503_within_the_timeout_then_recovers() {
    let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") else {
        return;
    };
    let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
    let (via, _) = through(&url, proxy.addr);
    let store = RedisStore::builder(&via)
        .prefix(&unique("p"))
        .timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect");
    failures_are_503_and_the_store_recovers("redis", &proxy, Arc::new(store)).await;
}

/// Connecting to a socket that accepts and never answers fails within the
/// timeout instead of hanging the receiver's start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_silent_server_fails_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let pg = tokio::time::timeout(
        HUNG,
        PostgresStore::builder(&format!("postgres://postgres@{addr}/postgres"))
            .timeout(TIMEOUT)
            .connect(),
    )
    .await
    .expect("postgres connect hung");
    let err = pg.expect_err("a silent server is an error");
    assert!(err.to_string().contains("did not answer"), "{err}");
    let redis = tokio::time::timeout(
        HUNG,
        RedisStore::builder(&format!("redis://{addr}/"))
            .timeout(TIMEOUT)
            .connect(),
    )
    .await
    .expect("redis connect hung");
    assert!(redis.is_err());
}

/// A database file locked by another process: 503 within the timeout,
/// then served again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_is_503_within_the_timeout() {
    let dir = std::env::temp_dir().join(format!("plugipay-unresponsive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{}.sqlite3", unique("locked")));
    let store = SqliteStore::builder(&path)
        .timeout(TIMEOUT)
        .open()
        .await
        .expect("open");
    let runs = Arc::new(AtomicUsize::new(0));
    let d = dispatcher(Arc::new(store), &runs);
    assert_eq!(d.dispatch(&event(&unique("evt"))).await, Outcome::Handled);

    let other = rusqlite::Connection::open(&path).expect("second connection");
    other
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the file");
    all_503(&d, "sqlite, file locked").await;
    other.execute_batch("COMMIT").expect("unlock");
    assert_eq!(d.dispatch(&event(&unique("evt"))).await, Outcome::Handled);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

// The durable inbox: its receive path under the same failures.

const PAID: &str = "plugipay.invoice.paid.v1";

fn inbox_event(id: &str) -> WebhookEvent {
    event(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_inbox_is_503_never_a_2xx() {
    let dir = std::env::temp_dir().join(format!("plugipay-inbox-locked-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locked.sqlite3");
    let backend =
        SqliteInbox::open_with(&path, "plugipay_webhook_inbox", Duration::from_millis(300))
            .await
            .unwrap();
    let inbox = Inbox::builder(backend)
        .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
        .build()
        .unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let outcome = inbox.receive(&inbox_event("evt_locked")).await;
    assert_eq!(
        (outcome, outcome.status().as_u16()),
        (Outcome::StoreUnavailable, 503)
    );
    assert_eq!(outcome.body(), r#"{"error":"store_unavailable"}"#);
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(
        inbox.receive(&inbox_event("evt_locked")).await,
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
        inbox.receive(&inbox_event(&unique("evt"))).await,
        Outcome::Stored,
        "{name}"
    );
    for mode in [Mode::Silent, Mode::Down] {
        proxy.set(mode);
        // Let the forwarders see the change first: an insert that slips
        // through before they do commits while its answer is withheld (a
        // 503 for a stored event — allowed, but not what this counts).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered = tokio::time::timeout(
            Duration::from_secs(20),
            inbox.receive(&inbox_event(&unique("evt"))),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} {mode:?}: the delivery hung"));
        assert_eq!(answered, Outcome::StoreUnavailable, "{name} {mode:?}");
    }
    proxy.set(Mode::Up);
    let mut outcome = Outcome::StoreUnavailable;
    for _ in 0..40 {
        outcome = inbox.receive(&inbox_event(&unique("evt"))).await;
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
