//! Opening what the previous release created: its inbox tables (SQLite,
//! PostgreSQL) and Redis layout, and its de-duplication tables, filled the
//! way it filled them, are brought to the current schema — nothing lost,
//! states kept, open events processed, done records still duplicates.

#![cfg(all(feature = "sqlite", feature = "postgres", feature = "redis"))]

use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{
    Inbox, InboxBackend, PostgresInbox, RedisInbox, SqliteInbox, State,
};
use plugipay_webhook_dispatch::{
    Claim, ClaimToken, DedupStore, EventKey, PostgresStore, SqliteStore,
};

const PAID: &str = "plugipay.invoice.paid.v1";

fn unique(name: &str) -> String {
    format!("{name}_{}", &ClaimToken::new().as_str()[..12])
}

fn body(id: &str) -> Vec<u8> {
    TestDelivery::new("whsec_m", PAID).id(id).body().to_vec()
}

/// The previous release's inbox table, verbatim but for the dialect's types.
fn v1_inbox_table(t: &str, blob: &str, int: &str) -> String {
    format!(
        "CREATE TABLE \"{t}\" (
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            body {blob} NOT NULL,
            signature TEXT NOT NULL,
            matched_secret {int} NOT NULL,
            account_id TEXT,
            occurred_at TEXT,
            received_at {int} NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at {int} NOT NULL,
            lease_owner TEXT,
            lease_until {int},
            last_error TEXT,
            updated_at {int} NOT NULL,
            PRIMARY KEY (event_id, event_type)
         );
         CREATE INDEX IF NOT EXISTS \"{t}_due\" ON \"{t}\" (state, next_attempt_at);"
    )
}

/// A row as the previous release wrote it: id, state, attempts,
/// next_attempt_at, lease_owner, lease_until, last_error.
type V1Row = (
    &'static str,
    &'static str,
    i64,
    i64,
    Option<&'static str>,
    Option<i64>,
    Option<&'static str>,
);

/// Rows as the previous release wrote them: a pending event, one a worker
/// died holding (its lease lapsed), a done one and a dead one.
fn v1_rows(now: i64) -> Vec<V1Row> {
    vec![
        ("evt_pending", "pending", 0, now - 1000, None, None, None),
        (
            "evt_running",
            "running",
            1,
            now - 60_000,
            Some("a_dead_worker"),
            Some(now - 500),
            None,
        ),
        ("evt_done", "done", 1, now - 60_000, None, None, None),
        (
            "evt_dead",
            "dead",
            3,
            now - 60_000,
            None,
            None,
            Some("handler error: down"),
        ),
    ]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap())
}

/// The migrated inbox, processed: the open events done, the dead one kept.
async fn processes_after_migration(name: &str, backend: InboxBackend, lapsed_running: bool) {
    let before = Inbox::builder(backend.clone()).build().unwrap();
    let mut records = before.list(None, None, 100).await.expect("readable");
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let states: Vec<(&str, State, u32, &str)> = records
        .iter()
        .map(|r| (r.id.as_str(), r.state, r.attempts, r.tenant.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("evt_dead", State::Dead, 3, ""),
            ("evt_done", State::Done, 1, ""),
            ("evt_pending", State::Pending, 0, ""),
            ("evt_running", State::Running, 1, ""),
        ],
        "{name}: every record kept with its state"
    );
    let dead = records.iter().find(|r| r.id == "evt_dead").unwrap();
    assert_eq!(
        dead.last_error.as_deref(),
        Some("handler error: down"),
        "{name}"
    );
    // A listing of one state reads that state's index (Redis: built by
    // the migration to layout 3).
    let dead_only: Vec<String> = before
        .list(Some(State::Dead), None, 10)
        .await
        .expect("readable")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(dead_only, ["evt_dead"], "{name}: a listing by state");
    let whole = before.get("evt_dead").await.expect("readable");
    assert_eq!(
        &whole[0].body[..],
        &body("evt_dead")[..],
        "{name}: the bytes kept"
    );
    let inbox = Inbox::builder(backend)
        .poll_interval(Duration::from_millis(20))
        .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
        .build()
        .unwrap();
    let workers = inbox.start_workers(2);
    let want_done = if lapsed_running { 3 } else { 2 };
    let mut stats = inbox.stats().await.unwrap();
    for _ in 0..400 {
        if stats.count(State::Done) == want_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        stats = inbox.stats().await.unwrap();
    }
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.count(State::Done), want_done, "{name}: {stats:?}");
    assert_eq!(stats.count(State::Dead), 1, "{name}: {stats:?}");
    if !lapsed_running {
        // Redis kept no lease expiry: a running event is due one default
        // lease after it was claimed.
        let running = inbox.get("evt_running").await.unwrap();
        assert_eq!(running[0].state, State::Running, "{name}");
        assert_eq!(
            running[0].due_at_ms - running[0].updated_at_ms,
            60_000,
            "{name}: due one lease after its claim"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_releases_sqlite_inbox_is_migrated() {
    let dir = std::env::temp_dir().join(format!("plugipay-migration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.sqlite3", unique("inbox")));
    let t = "plugipay_webhook_inbox";
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&v1_inbox_table(t, "BLOB", "INTEGER"))
            .unwrap();
        let now = now_ms();
        for (id, state, attempts, next, owner, until, error) in v1_rows(now) {
            conn.execute(
                &format!(
                    "INSERT INTO \"{t}\" (event_id, event_type, body, signature, matched_secret, received_at,
                        state, attempts, next_attempt_at, lease_owner, lease_until, last_error, updated_at)
                     VALUES (?1, ?2, ?3, 't=1,v1=00', 0, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?4)"
                ),
                rusqlite::params![id, PAID, body(id), now - 60_000, state, attempts, next, owner, until, error],
            )
            .unwrap();
        }
    }
    let backend: InboxBackend = SqliteInbox::open(&path)
        .await
        .expect("opens and migrates")
        .into();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT version FROM plugipay_webhook_schema WHERE name = ?1",
            [t],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 5);
    processes_after_migration("sqlite", backend, true).await;
    // Opening it again changes nothing.
    SqliteInbox::open(&path).await.expect("opens again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_releases_postgres_inbox_is_migrated() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = unique("inbox_v1");
    client
        .batch_execute(&v1_inbox_table(&t, "BYTEA", "BIGINT"))
        .await
        .unwrap();
    let now = now_ms();
    for (id, state, attempts, next, owner, until, error) in v1_rows(now) {
        client
            .execute(
                &format!(
                    "INSERT INTO \"{t}\" (event_id, event_type, body, signature, matched_secret, received_at,
                        state, attempts, next_attempt_at, lease_owner, lease_until, last_error, updated_at)
                     VALUES ($1, $2, $3, 't=1,v1=00', 0, $4, $5, $6, $7, $8, $9, $10, $4)"
                ),
                &[&id, &PAID, &body(id), &(now - 60_000), &state, &(attempts as i32), &next, &owner, &until, &error],
            )
            .await
            .unwrap();
    }
    let backend: InboxBackend = PostgresInbox::connect_with(&url, &t, Duration::from_secs(5))
        .await
        .expect("connects and migrates")
        .into();
    processes_after_migration("postgres", backend, true).await;
    PostgresInbox::connect_with(&url, &t, Duration::from_secs(5))
        .await
        .expect("connects again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_releases_redis_inbox_is_migrated() {
    let Some(url) = server_url("PLUGIPAY_TEST_REDIS_URL") else {
        return;
    };
    // The previous release's scripts, verbatim.
    let fixture = include_str!("fixtures/redis_inbox_v1.lua");
    let section = |name: &str| {
        let start = fixture.find(&format!("-- @@ {name}\n")).expect("a section") + name.len() + 7;
        let rest = &fixture[start..];
        rest[..rest.find("-- @@ ").unwrap_or(rest.len())].to_owned()
    };
    let prelude = section("PRELUDE");
    let script = |name: &str| redis::Script::new(&format!("{prelude}{}", section(name)));
    let prefix = unique("plugipay:test:v1");
    let p = format!("{{{prefix}}}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(format!("{p}:stream"))
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (insert, claim, finish) = (script("INSERT"), script("CLAIM"), script("FINISH"));
    // The previous release claimed in stream order: insert order.
    for id in ["evt_done", "evt_dead", "evt_running", "evt_pending"] {
        let r = format!("{}:{id}:{PAID}", id.len());
        let _: i64 = insert
            .arg(&p)
            .arg(&r)
            .arg(format!("{}:{id}", id.len()))
            .arg(id)
            .arg(PAID)
            .arg(body(id))
            .arg("t=1,v1=00")
            .arg("0")
            .arg("-")
            .arg("-")
            .arg("pending")
            .invoke_async(&mut conn)
            .await
            .unwrap();
    }
    // Claimed in stream order: done, dead, and one whose worker dies.
    for (to, error) in [("done", ""), ("dead", "handler error: down"), ("", "")] {
        let claimed: Option<(String, String, Vec<u8>, String, i64)> = claim
            .arg(&p)
            .arg("old_worker")
            .arg(60_000)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        let (id, ..) = claimed.expect("claimed");
        if to.is_empty() {
            assert_eq!(id, "evt_running");
            break;
        }
        let id = if to == "done" { "evt_done" } else { "evt_dead" };
        let r = format!("{}:{id}:{PAID}", id.len());
        let _: i64 = finish
            .arg(&p)
            .arg(&r)
            .arg("old_worker")
            .arg(to)
            .arg(error)
            .arg("0")
            .invoke_async(&mut conn)
            .await
            .unwrap();
    }
    // Make evt_dead's attempts 3, as three failed attempts leave it.
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}:ev:8:evt_dead:{PAID}"))
        .arg("attempts")
        .arg(3)
        .query_async(&mut conn)
        .await
        .unwrap();
    let backend: InboxBackend = RedisInbox::connect_with(&url, &prefix, Duration::from_secs(5))
        .await
        .expect("connects and migrates")
        .into();
    let version: i64 = redis::cmd("GET")
        .arg(format!("{p}:schema"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, 3, "the first layout taken to 2, then to 3");
    let stream: i64 = redis::cmd("EXISTS")
        .arg(format!("{p}:stream"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stream, 0, "the old stream is gone");
    processes_after_migration("redis", backend, false).await;
}

/// The previous release's de-duplication table (keyed on id and type): its
/// done records stay duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_releases_dedup_tables_are_migrated() {
    let v1 = |t: &str| {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" (
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                state TEXT NOT NULL,
                owner TEXT,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (event_id, event_type)
            );
            CREATE INDEX IF NOT EXISTS \"{t}_expires_at\" ON \"{t}\" (expires_at);
            INSERT INTO \"{t}\" VALUES ('evt_seen', '{PAID}', 'done', NULL, {}) ;",
            now_ms() + 3_600_000
        )
    };
    let check = |name: &'static str, store: std::sync::Arc<dyn DedupStore>| async move {
        let seen = EventKey::new("evt_seen", PAID);
        assert_eq!(
            store.claim(&seen, Duration::from_secs(60)).await.unwrap(),
            Claim::Done,
            "{name}"
        );
        // The same id for a tenant is another event.
        let tenants = EventKey::for_tenant("acme", "evt_seen", PAID);
        assert!(
            matches!(
                store
                    .claim(&tenants, Duration::from_secs(60))
                    .await
                    .unwrap(),
                Claim::Acquired(_)
            ),
            "{name}"
        );
    };
    let dir = std::env::temp_dir().join(format!("plugipay-migration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.sqlite3", unique("dedup")));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&v1("plugipay_webhook_events"))
        .unwrap();
    check(
        "sqlite",
        std::sync::Arc::new(SqliteStore::open(&path).await.expect("migrates")),
    )
    .await;
    if let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") {
        let t = unique("dedup_v1");
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(&v1(&t)).await.unwrap();
        let store = PostgresStore::connect_with_table(&url, &t)
            .await
            .expect("migrates");
        check("postgres", std::sync::Arc::new(store)).await;
    }
}
