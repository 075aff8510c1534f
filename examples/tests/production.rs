//! The example receivers in inbox mode against databases set up as
//! production runs them (started by `scripts/services`): a TLS-only
//! PostgreSQL with SCRAM passwords (`sslmode=verify-full`, `sslrootcert`),
//! PgBouncer in transaction pooling mode (`statement-cache-capacity=0`), a
//! TLS-only Redis with a password (`rediss://`, the CA through
//! `SSL_CERT_FILE`). Every delivery 202, every event handled once, one
//! ledger row each; a receiver that cannot connect exits at start-up with
//! one line naming the cause, never the password, never a 2xx.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};
use plugipay_webhook_dispatch::sqlx::{self, Connection, PgConnection};

mod common;
use common::{bin, server_url, tag, Running};

const SECRET: &str = "whsec_production_examples";
const PAID: &str = "plugipay.invoice.paid.v1";
const PASSWORD: &str = "plugipay-test-pw";

fn deliver(addr: SocketAddr, id: &str) -> u16 {
    let (body, header) = TestDelivery::new(SECRET, PAID)
        .id(id)
        .object(serde_json::json!({"id": format!("inv_{id}"), "total": 100}))
        .into_parts();
    let req = RawRequest::post("/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `url` naming database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
    format!("{base}/{db}?{query}")
}

/// A fresh database on the TLS-only server (so the inbox and
/// `example_ledger` are this test's own): its name.
async fn fresh_database(tls_url: &str) -> String {
    let db = format!("ex_{}", tag());
    let mut admin = PgConnection::connect(tls_url)
        .await
        .expect("admin over TLS");
    sqlx::Executor::execute(&mut admin, &*format!("CREATE DATABASE {db}"))
        .await
        .expect("database");
    db
}

/// Ledger rows per event id and the events still open, read over TLS.
async fn ledger_and_open(url: &str) -> (HashMap<String, i64>, i64) {
    let Ok(mut c) = PgConnection::connect(url).await else {
        return (HashMap::new(), -1);
    };
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, COUNT(*) FROM example_ledger GROUP BY event_id")
            .fetch_all(&mut c)
            .await
            .unwrap_or_default();
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM plugipay_webhook_inbox WHERE state IN ('pending', 'running')",
    )
    .fetch_one(&mut c)
    .await
    .unwrap_or(-1);
    (rows.into_iter().collect(), open)
}

/// Starts `receiver` on `inbox_url`, delivers `n` events (and 5 of them
/// again), and waits for one ledger row each, read through `check_url`.
fn ledger_exactly_once(receiver: &str, inbox_url: &str, check_url: &str, n: usize) {
    let rt = runtime();
    let rx = Running::start(
        bin(receiver),
        SECRET,
        &[
            ("PLUGIPAY_INBOX_URL", inbox_url),
            ("PLUGIPAY_INBOX_WORKERS", "4"),
        ],
    );
    let ids: Vec<String> = (0..n).map(|i| format!("evt_{}_{i}", tag())).collect();
    for id in ids.iter().chain(ids.iter().take(5)) {
        assert_eq!(deliver(rx.addr, id), 202, "{receiver}: {id}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ledger, open) = rt.block_on(ledger_and_open(check_url));
        if ledger.len() == n && open == 0 {
            assert!(ledger.values().all(|c| *c == 1), "{ledger:?}");
            assert!(ids.iter().all(|id| ledger.contains_key(id)));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{receiver}: {} of {n} in the ledger, {open} open",
            ledger.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn receivers_on_tls_only_postgres_and_through_pgbouncer_record_each_event_once() {
    let (Some(tls), Some(bouncer)) = (
        server_url("PLUGIPAY_TEST_POSTGRES_TLS_URL"),
        server_url("PLUGIPAY_TEST_PGBOUNCER_URL"),
    ) else {
        return;
    };
    let rt = runtime();
    // Direct, verify-full with the test CA, SCRAM: axum.
    let db = rt.block_on(fresh_database(&tls));
    let url = with_database(&tls, &db);
    ledger_exactly_once("axum", &url, &url, 40);
    // Through PgBouncer in transaction mode: actix-web, then tower on the
    // same database (the schema already there).
    let db = rt.block_on(fresh_database(&tls));
    let pooled = with_database(&bouncer, &db);
    ledger_exactly_once("actix-web", &pooled, &with_database(&tls, &db), 40);
}

/// Starts `receiver` with `env`, expecting it to exit at start-up: its
/// exit code and standard error.
fn start_up_failure(receiver: &str, env: &[(&str, &str)]) -> (Option<i32>, String, Duration) {
    let mut cmd = Command::new(bin(receiver));
    cmd.env("PLUGIPAY_WEBHOOK_SECRET", SECRET)
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let deadline = started + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{receiver} did not exit within 20 s with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr, started.elapsed())
}

#[test]
fn a_receiver_that_cannot_connect_says_why_in_one_line_without_the_password() {
    let (Some(tls), Some(redis)) = (
        server_url("PLUGIPAY_TEST_POSTGRES_TLS_URL"),
        server_url("PLUGIPAY_TEST_REDIS_TLS_URL"),
    ) else {
        return;
    };
    let dir = std::env::var("PLUGIPAY_TEST_TLS_DIR").expect("scripts/services sets it");
    let base = tls.split('?').next().unwrap();
    let cases: Vec<(String, &str, Option<String>)> = vec![
        (format!("{base}?sslmode=disable"), "no encryption", None),
        (
            format!("{base}?sslmode=verify-full&sslrootcert={dir}/other-ca.pem"),
            "certificate",
            None,
        ),
        (
            format!(
                "{}?sslmode=verify-full&sslrootcert={dir}/ca.pem",
                base.replace("@localhost:", "@127.0.0.1:")
            ),
            "not valid for name",
            None,
        ),
        (
            base.replace(PASSWORD, "wrong-password") + "?sslmode=require",
            "password authentication failed",
            None,
        ),
        (
            redis.replace(PASSWORD, "wrong-password"),
            "authentication failed",
            Some(format!("{dir}/ca.pem")),
        ),
        (
            redis.clone(),
            "certificate",
            Some(format!("{dir}/other-ca.pem")),
        ),
    ];
    for (url, cause, cert_file) in cases {
        let mut env = vec![("PLUGIPAY_INBOX_URL", url.as_str())];
        if let Some(f) = &cert_file {
            env.push(("SSL_CERT_FILE", f.as_str()));
        }
        let (code, stderr, took) = start_up_failure("axum", &env);
        assert_eq!(code, Some(2), "{url}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{url}: one line: {stderr}");
        assert!(errors[0].contains(cause), "{url}: {stderr}");
        assert!(
            !stderr.contains(PASSWORD) && !stderr.contains("wrong-password"),
            "a password shown: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(took < Duration::from_secs(15), "{url}: {took:?}");
    }
}

#[test]
fn a_receiver_on_rediss_with_a_password_handles_each_event_once() {
    let Some(redis) = server_url("PLUGIPAY_TEST_REDIS_TLS_URL") else {
        return;
    };
    let dir = std::env::var("PLUGIPAY_TEST_TLS_DIR").expect("scripts/services sets it");
    let ca = format!("{dir}/ca.pem");
    // A database of its own (the TLS Redis has 16).
    let url = format!("{}7", redis.trim_end_matches('/').to_owned() + "/");
    let rx = Running::start(
        bin("warp"),
        SECRET,
        &[
            ("PLUGIPAY_INBOX_URL", url.as_str()),
            ("PLUGIPAY_INBOX_WORKERS", "4"),
            ("SSL_CERT_FILE", ca.as_str()),
        ],
    );
    let ids: Vec<String> = (0..30).map(|i| format!("evt_{}_{i}", tag())).collect();
    for id in ids.iter().chain(ids.iter().take(5)) {
        assert_eq!(deliver(rx.addr, id), 202, "{id}");
    }
    let mut handled: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while handled.len() < ids.len() {
        for line in rx.drain() {
            if let Some(id) = line
                .strip_prefix("handled ")
                .and_then(|l| l.split(' ').next())
            {
                if ids.iter().any(|i| i == id) {
                    *handled.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        assert!(Instant::now() < deadline, "{} of 30 handled", handled.len());
    }
    std::thread::sleep(Duration::from_millis(500));
    for line in rx.drain() {
        if let Some(id) = line
            .strip_prefix("handled ")
            .and_then(|l| l.split(' ').next())
        {
            *handled.entry(id.to_owned()).or_default() += 1;
        }
    }
    assert!(handled.values().all(|n| *n == 1), "{handled:?}");
    assert!(ids.iter().all(|id| handled.contains_key(id)));
}
