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
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::{
    Claim, ClaimToken, DedupStore, Dispatcher, EventKey, MemoryStore, Outcome, PostgresStore,
    RedisStore, SqliteStore,
};

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
                Arc::new(SqliteStore::open(&path).await.expect("sqlite")) as Arc<dyn DedupStore>
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
        let store = SqliteStore::open(&path).await.expect("open");
        let Claim::Acquired(t) = store.claim(&key, LONG).await.expect("claim") else {
            panic!()
        };
        assert!(store.complete(&key, &t, LONG).await.expect("complete"));
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.claim(&key, LONG).await.expect("claim"), Claim::Done);
}

#[tokio::test]
async fn unreachable_servers_are_store_errors_not_panics() {
    assert!(PostgresStore::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .is_err());
    assert!(RedisStore::connect("redis://127.0.0.1:1/").await.is_err());
    assert!(SqliteStore::open_with_table(temp_db("x"), "bad name; drop")
        .await
        .is_err());
    let err = plugipay_webhook_dispatch::store_from_url("mysql://x")
        .await
        .err()
        .expect("unknown scheme");
    assert!(err.to_string().contains("unknown"), "{err}");
    assert!(plugipay_webhook_dispatch::store_from_url("memory:")
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_extends_a_claim_on_every_backend() {
    for (name, open) in backends() {
        let store = open().await;
        let key = EventKey::new(unique("evt"), "t");
        let short = Duration::from_millis(400);
        let Claim::Acquired(token) = store.claim(&key, short).await.expect("claim") else {
            panic!("{name}")
        };
        assert!(
            !store
                .extend(&key, &ClaimToken::new(), LONG)
                .await
                .expect("extend"),
            "{name}: a stranger cannot extend"
        );
        assert!(
            store.extend(&key, &token, LONG).await.expect("extend"),
            "{name}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::InProgress,
            "{name}: the extended claim outlives its first lease"
        );
        assert!(
            store.complete(&key, &token, LONG).await.expect("complete"),
            "{name}"
        );
        assert!(
            !store.extend(&key, &token, LONG).await.expect("extend"),
            "{name}: a done record is not a claim"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_max_means_forever_on_every_backend() {
    for (name, open) in backends() {
        let store = open().await;
        let key = EventKey::new(unique("evt"), "t");
        let Claim::Acquired(token) = store.claim(&key, Duration::MAX).await.expect("claim") else {
            panic!("{name}")
        };
        assert!(
            store
                .extend(&key, &token, Duration::MAX)
                .await
                .expect("extend"),
            "{name}"
        );
        assert!(
            store
                .complete(&key, &token, Duration::MAX)
                .await
                .expect("complete"),
            "{name}"
        );
        assert_eq!(
            store.claim(&key, LONG).await.expect("claim"),
            Claim::Done,
            "{name}"
        );
        // And the store goes on answering other events.
        let other = EventKey::new(unique("evt"), "t");
        assert!(
            matches!(store.claim(&other, LONG).await, Ok(Claim::Acquired(_))),
            "{name}"
        );
        // Through the dispatcher: "forever" is accepted at build.
        let d = Dispatcher::builder_shared(store)
            .lease(Duration::MAX)
            .retention(Duration::MAX)
            .on("plugipay.invoice.paid.v1", |_e| async {
                Ok::<_, std::io::Error>(())
            })
            .build()
            .expect("Duration::MAX is forever");
        let ev = event(&unique("evt"));
        assert_eq!(d.dispatch(&ev).await, Outcome::Handled, "{name}");
        assert_eq!(d.dispatch(&ev).await, Outcome::Duplicate, "{name}");
    }
}

/// The SQL stores with a table named by a reserved word, and with the
/// longest name allowed (its index must exist, not be silently skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_words_and_long_table_names_work_on_sql_stores() {
    use plugipay_webhook_dispatch::MAX_TABLE_NAME_LEN;
    let longest = format!("t{}", "x".repeat(MAX_TABLE_NAME_LEN - 1));
    let too_long = format!("{longest}x");
    let mut stores: Vec<(String, Arc<dyn DedupStore>)> = Vec::new();
    let path = temp_db(&unique("reserved"));
    for table in ["order", "user", "select", longest.as_str()] {
        let s = SqliteStore::open_with_table(&path, table)
            .await
            .expect("sqlite table");
        stores.push((format!("sqlite {table}"), Arc::new(s)));
    }
    assert!(SqliteStore::open_with_table(&path, &too_long)
        .await
        .is_err());
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        // A fresh schema, so the names are free whatever ran before.
        let schema = unique("s");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("postgres");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        let scoped = format!(
            "{url}{}options=-csearch_path%3D{schema}",
            if url.contains('?') { '&' } else { '?' }
        );
        for table in ["order", "user", longest.as_str()] {
            let s = PostgresStore::connect_with_table(&scoped, table)
                .await
                .expect("postgres table");
            stores.push((format!("postgres {table}"), Arc::new(s)));
        }
        let err = PostgresStore::connect_with_table(&scoped, &too_long)
            .await
            .expect_err("too long");
        assert!(err.to_string().contains("must be 1-52"), "{err}");
        let indexes: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
                &[&schema, &format!("{longest}_expires_at")],
            )
            .await
            .expect("pg_indexes")
            .get(0);
        assert_eq!(indexes, 1, "the longest name's index exists");
    }
    for (name, store) in stores {
        let key = EventKey::new(unique("evt"), "t");
        let Claim::Acquired(token) = store.claim(&key, LONG).await.expect(&name) else {
            panic!("{name}")
        };
        assert!(store.complete(&key, &token, LONG).await.expect(&name));
        assert_eq!(
            store.claim(&key, LONG).await.expect(&name),
            Claim::Done,
            "{name}"
        );
    }
}

/// A blocking handler that outlives its timeout *and* its lease keeps its
/// claim until it returns, on every backend: it never runs twice at once,
/// and its success is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_handler_never_runs_twice_on_every_backend() {
    for (name, open) in backends() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (r, m, n) = (running.clone(), most.clone(), runs.clone());
        let d = Dispatcher::builder_shared(open().await)
            .lease(Duration::from_millis(600))
            .handler_timeout(Duration::from_millis(100))
            .on_blocking("plugipay.invoice.paid.v1", move |_e| {
                n.fetch_add(1, Ordering::SeqCst);
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2000));
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .build()
            .expect("build");
        let ev = event(&unique("evt"));
        assert_eq!(d.dispatch(&ev).await, Outcome::HandlerFailed, "{name}");
        // Plugipay retries while the thread is still running (past the lease).
        let mut seen = Vec::new();
        for _ in 0..12 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen.push(d.dispatch(&ev).await);
        }
        assert!(
            seen.iter().all(|o| *o == Outcome::InProgress),
            "{name}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            d.dispatch(&ev).await,
            Outcome::Duplicate,
            "{name}: its success is recorded"
        );
        assert_eq!(
            (runs.load(Ordering::SeqCst), most.load(Ordering::SeqCst)),
            (1, 1),
            "{name}"
        );
    }
}

/// U+0000 in the id or the type (PostgreSQL's text cannot hold it): every
/// store answers the same 400 `nul_in_text`, the handler never runs, and
/// the next event is handled (before, PostgreSQL answered 503 for ever and
/// reported the store down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_the_id_or_type_is_400_on_every_backend() {
    for (name, open) in backends() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let dispatcher = Dispatcher::builder_shared(open().await)
            .on("plugipay.invoice.paid.v1", move |_e| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(())
                }
            })
            .on("plugipay.invoice.paid\0.v1", |_e| async {
                Ok::<_, std::io::Error>(())
            })
            .build()
            .expect("build");
        let nul_type = TestDelivery::new("whsec_t", "plugipay.invoice.paid\0.v1")
            .id(unique("evt"))
            .verify_with(&Verifier::new("whsec_t"))
            .expect("verifies");
        for ev in [event(&format!("{}\0", unique("evt"))), nul_type] {
            let outcome = dispatcher.dispatch(&ev).await;
            assert_eq!(
                (outcome, outcome.status().as_u16(), outcome.body()),
                (Outcome::Unstorable, 400, r#"{"error":"nul_in_text"}"#),
                "{name}"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0, "{name}: no handler ran");
        let ok = event(&unique("evt"));
        assert_eq!(dispatcher.dispatch(&ok).await, Outcome::Handled, "{name}");
        dispatcher.health().await.expect("healthy after them");
    }
}
