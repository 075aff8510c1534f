//! The store contract, run against every backend — PostgreSQL and Redis are
//! real servers started by `scripts/services` (through `scripts/test`).
//!
//! Without servers the PostgreSQL and Redis tests fail, unless
//! `PLUGIPAY_TEST_NO_SERVERS=1` says on purpose that none exist; then they
//! skip with a loud message.

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
use plugipay_webhook_dispatch::{
    Claim, ClaimToken, DedupStore, Dispatcher, EventKey, MemoryStore, Outcome, PostgresStore,
    RedisStore, SqliteStore,
};

fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PLUGIPAY_TEST_NO_SERVERS").as_deref() == Ok("1") => {
            eprintln!("\n*** SKIPPED: {var} is unset and PLUGIPAY_TEST_NO_SERVERS=1: no real server tested ***\n");
            None
        }
        _ => panic!("{var} is unset: run the tests through scripts/test (it starts the servers), or set PLUGIPAY_TEST_NO_SERVERS=1 to skip"),
    }
}

/// A unique key space per test run, so reruns against one server don't collide.
fn unique(name: &str) -> String {
    format!("{name}_{}", ClaimToken::new().as_str())
}

type Opener =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn DedupStore>>>>>;

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plugipay-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{name}.sqlite3"))
}

/// Each backend and a way to open another, independent client of the same
/// store (another "process": its own connection).
fn backends() -> Vec<(&'static str, Opener)> {
    let mut v: Vec<(&'static str, Opener)> = Vec::new();
    let memory = Arc::new(MemoryStore::new()) as Arc<dyn DedupStore>;
    v.push((
        "memory",
        Box::new(move || {
            let m = memory.clone();
            Box::pin(async move { m })
        }),
    ));
    let path = temp_db(&unique("contract"));
    v.push((
        "sqlite",
        Box::new(move || {
            let path = path.clone();
            Box::pin(async move {
                Arc::new(SqliteStore::open(&path).expect("sqlite")) as Arc<dyn DedupStore>
            })
        }),
    ));
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        let table = unique("t");
        v.push((
            "postgres",
            Box::new(move || {
                let (url, table) = (url.clone(), table.clone());
                Box::pin(async move {
                    Arc::new(
                        PostgresStore::connect_with_table(&url, &table)
                            .await
                            .expect("postgres"),
                    ) as Arc<dyn DedupStore>
                })
            }),
        ));
    }
    if let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") {
        let prefix = unique("p");
        v.push((
            "redis",
            Box::new(move || {
                let (url, prefix) = (url.clone(), prefix.clone());
                Box::pin(async move {
                    Arc::new(
                        RedisStore::connect_with_prefix(&url, &prefix)
                            .await
                            .expect("redis"),
                    ) as Arc<dyn DedupStore>
                })
            }),
        ));
    }
    v
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_complete_release_semantics_on_every_backend() {
    for (name, open) in backends() {
        let store = open().await;
        let key = EventKey::new(unique("evt"), "plugipay.invoice.paid.v1");

        let Claim::Acquired(token) = store.claim(&key, LONG).await.expect("claim") else {
            panic!("{name}: first claim must be acquired")
        };
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::InProgress,
            "{name}"
        );
        // A stranger's token can neither complete nor release.
        let stranger = ClaimToken::new();
        assert!(
            !store
                .complete(&key, &stranger, LONG)
                .await
                .expect("complete"),
            "{name}"
        );
        assert!(
            !store.release(&key, &stranger).await.expect("release"),
            "{name}"
        );
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::InProgress,
            "{name}"
        );
        // Release: the next delivery runs the handler.
        assert!(
            store.release(&key, &token).await.expect("release"),
            "{name}"
        );
        let Claim::Acquired(token) = store.claim(&key, LONG).await.expect("claim") else {
            panic!("{name}: claim after release must be acquired")
        };
        // Complete: duplicates from now on.
        assert!(
            store.complete(&key, &token, LONG).await.expect("complete"),
            "{name}"
        );
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::Done,
            "{name}"
        );
        assert!(
            !store.release(&key, &token).await.expect("release"),
            "{name}: done is not releasable"
        );
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::Done,
            "{name}"
        );

        // The type is part of the key; ids containing separators don't collide.
        let v2 = EventKey::new(key.id.clone(), "plugipay.invoice.paid.v2");
        assert!(
            matches!(
                store.claim(&v2, LONG).await.expect("claim"),
                Claim::Acquired(_)
            ),
            "{name}"
        );
        let a = EventKey::new(format!("{}:x", key.id), "y");
        let b = EventKey::new(key.id.clone(), "x:y");
        assert!(
            matches!(
                store.claim(&a, LONG).await.expect("claim"),
                Claim::Acquired(_)
            ),
            "{name}"
        );
        assert!(
            matches!(
                store.claim(&b, LONG).await.expect("claim"),
                Claim::Acquired(_)
            ),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_retention_expire_by_themselves() {
    for (name, open) in backends() {
        let store = open().await;
        let key = EventKey::new(unique("evt"), "t");
        let short = Duration::from_millis(400);
        // A holder that dies keeps the event only until the lease passes.
        let Claim::Acquired(dead) = store.claim(&key, short).await.expect("claim") else {
            panic!("{name}")
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        let Claim::Acquired(live) = store.claim(&key, LONG).await.expect("claim") else {
            panic!("{name}: a lapsed lease must be claimable")
        };
        assert!(
            !store.complete(&key, &dead, LONG).await.expect("complete"),
            "{name}: lapsed token"
        );
        // Done records are kept for the retention, then forgotten.
        assert!(
            store.complete(&key, &live, short).await.expect("complete"),
            "{name}"
        );
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::Done,
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            matches!(
                store.claim(&key, LONG).await.expect("claim"),
                Claim::Acquired(_)
            ),
            "{name}: retention passed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_from_separate_clients_have_one_winner() {
    for (name, open) in backends() {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(open().await);
        }
        for round in 0..20 {
            let key = EventKey::new(unique(&format!("race{round}")), "t");
            let tasks: Vec<_> = (0..32)
                .map(|i| {
                    let store = clients[i % clients.len()].clone();
                    let key = key.clone();
                    tokio::spawn(async move { store.claim(&key, LONG).await })
                })
                .collect();
            let mut winners = 0;
            for t in tasks {
                if let Claim::Acquired(_) = t.await.expect("join").expect("claim") {
                    winners += 1;
                }
            }
            assert_eq!(winners, 1, "{name}: round {round}");
        }
    }
}

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new("whsec_t", "plugipay.invoice.paid.v1")
        .id(id)
        .verify_with(&Verifier::new("whsec_t"))
        .expect("verifies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_once_is_handled_once_by_the_retry_on_every_backend() {
    for (name, open) in backends() {
        let runs = Arc::new(AtomicUsize::new(0));
        let succeeded = Arc::new(AtomicUsize::new(0));
        let (r, s) = (runs.clone(), succeeded.clone());
        let dispatcher = Dispatcher::builder_shared(open().await)
            .on("plugipay.invoice.paid.v1", move |_e| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err::<(), _>(std::io::Error::other("database down"));
                    }
                    s.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .build()
            .expect("build");
        let ev = event(&unique("evt"));
        assert_eq!(
            dispatcher.dispatch(&ev).await,
            Outcome::HandlerFailed,
            "{name}"
        );
        assert_eq!(
            dispatcher.dispatch(&ev).await,
            Outcome::Handled,
            "{name}: the retry runs it"
        );
        assert_eq!(dispatcher.dispatch(&ev).await, Outcome::Duplicate, "{name}");
        assert_eq!(
            (
                runs.load(Ordering::SeqCst),
                succeeded.load(Ordering::SeqCst)
            ),
            (2, 1),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_survive_reopening_the_file() {
    let path = temp_db(&unique("restart"));
    let key = EventKey::new("evt_restart", "t");
    {
        let store = SqliteStore::open(&path).expect("open");
        let Claim::Acquired(t) = store.claim(&key, LONG).await.expect("claim") else {
            panic!()
        };
        assert!(store.complete(&key, &t, LONG).await.expect("complete"));
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.claim(&key, LONG).await.expect("claim"), Claim::Done);
}

#[tokio::test]
async fn unreachable_servers_are_store_errors_not_panics() {
    assert!(PostgresStore::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .is_err());
    assert!(RedisStore::connect("redis://127.0.0.1:1/").await.is_err());
    assert!(SqliteStore::open_with_table(temp_db("x"), "bad name; drop").is_err());
    let err = plugipay_webhook_dispatch::store_from_url("mysql://x")
        .await
        .err()
        .expect("unknown scheme");
    assert!(err.to_string().contains("unknown"), "{err}");
    assert!(plugipay_webhook_dispatch::store_from_url("memory:")
        .await
        .is_ok());
}
