//! The PostgreSQL inbox's receive connections, against a real server: a
//! pool of `n` is `n` server backends under concurrent deliveries (their
//! commits reach the server together instead of queueing on one backend);
//! one connection is one backend; and every connection whose backend is
//! killed is replaced, with nothing acknowledged lost;
//! a table dropped while its schema version stays recorded is made anew.

#![cfg(feature = "postgres")]

use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::Verifier;
use plugipay_webhook_conformance::plumbing::server_url;
use plugipay_webhook_dispatch::inbox::{Inbox, PostgresInbox, State};
use plugipay_webhook_dispatch::Outcome;

const SECRET: &str = "whsec_pg_connections";

fn event(id: &str) -> plugipay_webhook::WebhookEvent {
    TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(conn);
    c
}

/// The server backends that ran this table's insert.
async fn inserting_backends(c: &tokio_postgres::Client, table: &str) -> Vec<i32> {
    c.query(
        "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE $1",
        // The statement file starts with its comment: matched anywhere.
        &[&format!("%INSERT INTO \"{table}\" %")],
    )
    .await
    .expect("pg_stat_activity")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn receive_concurrently(inbox: &Inbox, prefix: &str, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (inbox, id) = (inbox.clone(), format!("{prefix}_{i}"));
        tasks.push(tokio::spawn(
            async move { inbox.receive(&event(&id)).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Outcome::Stored);
    }
}

async fn case(url: &str, connections: usize) {
    let table = format!("pg_conn_test_{}_{connections}", std::process::id());
    let inbox = Inbox::builder(
        PostgresInbox::builder(url)
            .table(&table)
            .connections(connections)
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("the inbox"),
    )
    .build()
    .expect("inbox");
    let admin = client(url).await;
    receive_concurrently(&inbox, "first", 64).await;
    let backends = inserting_backends(&admin, &table).await;
    let all: Vec<String> = admin
        .query("SELECT pid::text || ' ' || state || ' ' || left(query, 60) FROM pg_stat_activity WHERE backend_type = 'client backend'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        backends.len(),
        connections,
        "{connections} connection(s): backends {backends:?} of {all:#?}"
    );

    // Every backend killed: each connection is closed on its next use and
    // replaced by a new one; a delivery answered 503 meanwhile is retried,
    // as a sender does. Concurrent, as the first burst: the pool opens what
    // concurrency asks for, up to its size.
    for pid in &backends {
        admin
            .execute("SELECT pg_terminate_backend($1)", &[pid])
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = Vec::new();
    for i in 0..(connections * 16) {
        let (inbox, ev) = (inbox.clone(), event(&format!("after_{i}")));
        tasks.push(tokio::spawn(async move {
            while inbox.receive(&ev).await != Outcome::Stored {
                assert!(Instant::now() < deadline, "the inbox never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = inserting_backends(&admin, &table).await;
    assert!(!after.is_empty() && after.len() <= connections, "{after:?}");
    assert!(
        after.iter().all(|p| !backends.contains(p)),
        "new backends: {backends:?} then {after:?}"
    );
    let stats = inbox.stats().await.unwrap();
    assert_eq!(
        stats.count(State::Skipped) as usize,
        64 + connections * 16,
        "every acknowledged event is stored"
    );
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();

    // Its version is still recorded: a new inbox on the name makes the
    // table anew instead of taking it as current.
    let again = Inbox::builder(
        PostgresInbox::builder(url)
            .table(&table)
            .connect()
            .await
            .expect("the table made anew"),
    )
    .build()
    .expect("inbox");
    assert_eq!(again.receive(&event("anew")).await, Outcome::Stored);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_connections_are_backends_taken_in_turn_and_replaced_when_killed() {
    let Some(url) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    case(&url, 1).await;
    case(&url, 4).await;
}
