//! `plugipay-webhook inbox …` against real SQLite and Redis inboxes filled
//! through the library: stats, list, show (with tamper evidence), retry,
//! replay, prune.

use std::process::{Command, Stdio};
use std::time::Duration;

use plugipay_webhook::http::{receive, HttpHead};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::plumbing::{server_url, Process};
use plugipay_webhook_dispatch::inbox::{inbox_from_url, Inbox, State};

const BIN: &str = env!("CARGO_BIN_EXE_plugipay-webhook");
const SECRET: &str = "whsec_cli_inbox";

/// An event received as an adapter receives it (so it keeps its header).
async fn received(event_type: &str, id: &str) -> WebhookEvent {
    let (body, signature) = TestDelivery::new(SECRET, event_type).id(id).into_parts();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-plugipay-signature", signature.parse().unwrap());
    let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
    receive(
        Some(&Verifier::new(SECRET)),
        &HttpHead::new("/", &headers),
        body,
    )
    .await
    .expect("verifies")
}

fn inbox_cli(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .env("PLUGIPAY_WEBHOOK_SECRET", SECRET)
        .env("PLUGIPAY_INBOX_URL", url)
        .arg("inbox")
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn inbox_operations_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("inbox.sqlite3");
    let _ = std::fs::remove_file(&db);
    let url = format!("sqlite://{}", db.display());
    operations(&url, || rusqlite_like_update(&db));
}

#[test]
fn inbox_operations_on_redis() {
    let Some(base) = server_url("PLUGIPAY_TEST_REDIS_URL") else {
        return;
    };
    // A database of this test's own, emptied first.
    let host = base
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    redis_command(&host, &[b"SELECT", b"12"], &[b"FLUSHDB"]);
    let url = format!("redis://{host}/12");
    operations(&url, || {
        // Someone with access to Redis changes the stored body.
        let key = "{plugipay:webhook:inbox}:ev:8:evt_done:plugipay.invoice.paid.v1";
        let (body, _) = TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
            .id("evt_dono")
            .into_parts();
        redis_command(
            &host,
            &[b"SELECT", b"12"],
            &[b"HSET", key.as_bytes(), b"body", &body],
        );
        1
    });
}

/// Sends two commands on one connection (RESP arrays, binary-safe) and
/// waits for their two answers.
fn redis_command(host: &str, first: &[&[u8]], second: &[&[u8]]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).expect("redis");
    let mut wire = Vec::new();
    for cmd in [first, second] {
        wire.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
        for arg in cmd {
            wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            wire.extend_from_slice(arg);
            wire.extend_from_slice(b"\r\n");
        }
    }
    s.write_all(&wire).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.iter().filter(|&&b| b == b'\n').count() < 2 {
        let n = s.read(&mut buf).expect("redis answers");
        assert!(n > 0, "redis closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        !got.contains(&b'-'),
        "redis refused: {}",
        String::from_utf8_lossy(&got)
    );
}

/// The operations, on the inbox at `url`; `tamper` changes `evt_done`'s
/// stored body and returns how many it changed.
fn operations(url: &str, tamper: impl Fn() -> usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = inbox_from_url(url).await.expect("the inbox");
        let inbox = Inbox::builder(backend)
            .max_attempts(1)
            .poll_interval(Duration::from_millis(20))
            .on("plugipay.invoice.paid.v1", |_e| async {
                Ok::<_, std::io::Error>(())
            })
            .on("plugipay.payout.paid.v1", |_e| async {
                Err::<(), _>(std::io::Error::other("payouts service down"))
            })
            .build()
            .unwrap();
        // A few ms apart: listings order by the time received.
        for (event_type, id) in [
            ("plugipay.invoice.paid.v1", "evt_done"),
            ("plugipay.payout.paid.v1", "evt_dead"),
            ("plugipay.brand.new.v1", "evt_skipped"),
        ] {
            inbox.receive(&received(event_type, id).await).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let workers = inbox.start_workers(1);
        for _ in 0..200 {
            let s = inbox.stats().await.unwrap();
            if s.count(State::Done) == 1 && s.count(State::Dead) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        workers.shutdown(Duration::from_secs(5)).await;
    });

    let (code, out) = inbox_cli(url, &["stats", "--json"]);
    assert_eq!(code, Some(0));
    let stats: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(
        (
            stats["pending"].as_u64(),
            stats["running"].as_u64(),
            stats["done"].as_u64(),
            stats["dead"].as_u64(),
            stats["skipped"].as_u64(),
            stats["stale"].as_u64()
        ),
        (Some(0), Some(0), Some(1), Some(1), Some(1), Some(0)),
        "{stats}"
    );

    let (_, out) = inbox_cli(url, &["list", "--state", "dead"]);
    assert!(
        out.contains("evt_dead") && out.contains("payouts service down"),
        "{out}"
    );
    assert!(!out.contains("evt_done"), "{out}");

    // Tamper evidence: the stored bytes verify against the stored header…
    let (code, out) = inbox_cli(url, &["show", "evt_done"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verify against the stored header"), "{out}");
    // …until someone changes them in the database.
    assert_eq!(tamper(), 1);
    let (code, out) = inbox_cli(url, &["show", "evt_done"]);
    assert_eq!(code, Some(13), "{out}");
    assert!(out.contains("DOES NOT VERIFY"), "{out}");

    // One event by id, whatever terminal state it is in.
    let (code, out) = inbox_cli(url, &["retry", "evt_dead"]);
    assert!(out.contains("1 event pending again"), "{out}");
    assert_eq!(code, Some(0), "{out}");
    let (_, out) = inbox_cli(url, &["retry", "--dead"]);
    assert!(out.contains("0 events pending again"), "{out}");
    let (_, out) = inbox_cli(
        url,
        &["retry", "--skipped", "--type", "plugipay.brand.new.v1"],
    );
    assert!(out.contains("1 event pending again"), "{out}");

    // Replay the exact stored bytes, signed afresh, to a receiver.
    let mut cmd = Command::new(BIN);
    cmd.env("PLUGIPAY_WEBHOOK_SECRET", SECRET)
        .args(["listen", "--port", "0", "--json"])
        .stderr(Stdio::null());
    let listener = Process::spawn(cmd);
    let addr = listener.listening_addr();
    let (code, out) = inbox_cli(
        url,
        &["replay", "evt_dead", "--to", &format!("http://{addr}/hook")],
    );
    assert_eq!(code, Some(0), "{out}");
    let got = listener.drain(Duration::from_millis(500));
    assert!(got[0].contains("\"id\":\"evt_dead\""), "{got:?}");

    // Retrying a done event says why nothing moved; --done --force reruns it.
    let (code, out) = inbox_cli(url, &["retry", "evt_done"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("evt_done is done") && out.contains("--done evt_done --force"),
        "{out}"
    );
    let (code, out) = inbox_cli(url, &["retry", "--done", "evt_done"]);
    assert_eq!(code, Some(2), "--done needs --force: {out}");
    // An id the inbox does not hold: "not found".
    let (code, _) = inbox_cli(url, &["show", "evt_nowhere"]);
    assert_eq!(code, Some(5));

    // Paging, newest first: one at a time, then the next with --after.
    let (code, out) = inbox_cli(url, &["list", "--newest", "--limit", "1", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let first: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(first["id"], "evt_skipped", "the newest: {out}");
    let cursor = first["cursor"].as_str().expect("a cursor").to_owned();
    let (_, out) = inbox_cli(
        url,
        &["list", "--newest", "--limit", "5", "--after", &cursor],
    );
    let ids: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["evt_dead", "evt_done"], "{out}");

    // Prune: under 7 days only with --force, saying why; done events only
    // by default; an age that overflows is refused, not wrapped to 0.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, _) = inbox_cli(url, &["prune", "--older-than", "144115188075855872d"]);
    assert_eq!(code, Some(2), "an overflowing age is a usage error");
    let out = Command::new(BIN)
        .env("PLUGIPAY_INBOX_URL", url)
        .args(["inbox", "prune", "--older-than", "1s"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("7 days") && err.contains("--force"), "{err}");
    let (code, out) = inbox_cli(url, &["prune", "--older-than", "1s", "--force"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("1 done event deleted"), "{out}");
}

/// The read-only verbs never create an inbox: a mistyped path is an error.
#[test]
fn a_missing_sqlite_inbox_is_an_error_not_a_new_inbox() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("typo.sqlite3");
    let url = format!("sqlite://{}", db.display());
    for verb in [&["stats"][..], &["list"], &["show", "evt_1"]] {
        let out = Command::new(BIN)
            .env("PLUGIPAY_INBOX_URL", &url)
            .arg("inbox")
            .args(verb)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{verb:?}: {err}");
        assert!(err.contains("does not exist"), "{verb:?}: {err}");
        assert!(!db.exists(), "{verb:?} created {}", db.display());
    }
}

/// Tenants: `list --tenant`, and `show`/`replay` verify and sign with that
/// tenant's secrets from PLUGIPAY_TENANT_SECRETS.
#[test]
fn a_tenants_event_is_shown_and_replayed_with_its_own_secrets() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-tenant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("tenants.sqlite3");
    let _ = std::fs::remove_file(&db);
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let inbox = Inbox::builder(inbox_from_url(&url).await.unwrap())
            .build()
            .unwrap();
        for (tenant, secret) in [("acme", "whsec_acme"), ("globex", "whsec_globex")] {
            inbox
                .receive(&received_as(tenant, secret, "evt_shared").await)
                .await;
        }
    });
    let tenants = "acme=whsec_acme;globex=whsec_globex";
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .env("PLUGIPAY_WEBHOOK_SECRET", "whsec_not_theirs")
            .env("PLUGIPAY_TENANT_SECRETS", tenants)
            .env("PLUGIPAY_INBOX_URL", &url)
            .arg("inbox")
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (_, out) = cli(&["list", "--tenant", "globex"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("tenant globex"), "{out}");
    let (code, out) = cli(&["show", "evt_shared"]);
    assert_eq!(
        code,
        Some(0),
        "each verifies with its own tenant's secret: {out}"
    );
    assert!(
        out.contains("tenant acme's secret") && out.contains("tenant globex's secret"),
        "{out}"
    );
    // Replaying needs to know which; then it signs with that tenant's secret.
    let (code, _) = cli(&["replay", "evt_shared", "--to", "http://127.0.0.1:9/"]);
    assert_eq!(code, Some(2), "ambiguous without --tenant");
    let mut cmd = Command::new(BIN);
    cmd.env("PLUGIPAY_WEBHOOK_SECRET", "whsec_acme")
        .args(["listen", "--port", "0", "--json"])
        .stderr(Stdio::null());
    let listener = Process::spawn(cmd);
    let addr = listener.listening_addr();
    let (code, out) = cli(&[
        "replay",
        "evt_shared",
        "--tenant",
        "acme",
        "--to",
        &format!("http://{addr}/hook"),
    ]);
    assert_eq!(
        code,
        Some(0),
        "signed with acme's secret, which the listener has: {out}"
    );
}

/// An event received on a tenant's route.
async fn received_as(tenant: &str, secret: &str, id: &str) -> WebhookEvent {
    use plugipay_webhook::http::{Tenant, Verifiers};
    let (body, signature) = TestDelivery::new(secret, "plugipay.invoice.paid.v1")
        .id(id)
        .into_parts();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-plugipay-signature", signature.parse().unwrap());
    let body = http_body_util::BodyDataStream::new(http_body_util::Full::new(body));
    let tenants = Verifiers::by_tenant(
        Tenant::in_path("/t/{tenant}"),
        Verifiers::parse_tenant_secrets(&format!("{tenant}={secret}")).unwrap(),
    );
    receive(
        Some(&tenants),
        &HttpHead::new(&format!("/t/{tenant}"), &headers),
        body,
    )
    .await
    .expect("verifies")
}

/// A closed pipe ends a listing quietly.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("pipe.sqlite3");
    let _ = std::fs::remove_file(&db);
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let inbox = Inbox::builder(inbox_from_url(&url).await.unwrap())
            .build()
            .unwrap();
        for i in 0..2000 {
            inbox
                .receive(&received("plugipay.invoice.paid.v1", &format!("evt_{i}")).await)
                .await;
        }
    });
    let mut child = Command::new(BIN)
        .env("PLUGIPAY_INBOX_URL", &url)
        .args(["inbox", "list", "--limit", "2000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // `| head -1`: read one line, then close the pipe.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

/// Changes evt_done's stored body, as someone with database access would.
fn rusqlite_like_update(db: &std::path::Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "UPDATE plugipay_webhook_inbox SET body = CAST(REPLACE(CAST(body AS TEXT), 'evt_done', 'evt_dono') AS BLOB) WHERE event_id = 'evt_done'",
        [],
    )
    .unwrap()
}

/// `list --object ID`: one object's events in the order they happened,
/// each that arrived after a later one marked late.
#[test]
fn an_objects_timeline_marks_late_arrivals() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("inbox.sqlite3").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let inbox = Inbox::builder(inbox_from_url(&url).await.expect("the inbox"))
            .build()
            .unwrap();
        // Arrival order: second 2, then 0, then 1; another object between.
        for (id, object, second) in [
            ("evt_t2", "sub_1", 2),
            ("evt_t0", "sub_1", 0),
            ("evt_other", "sub_2", 1),
            ("evt_t1", "sub_1", 1),
        ] {
            let verifier = Verifier::new(SECRET);
            let event = TestDelivery::new(SECRET, "plugipay.subscription.cancelled.v1")
                .id(id)
                .occurred_at(Some(&format!("2026-12-04T10:00:0{second}Z")))
                .object(serde_json::json!({ "id": object }))
                .verify_with(&verifier)
                .unwrap();
            inbox.receive(&event).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let (code, out) = inbox_cli(&url, &["list", "--object", "sub_1", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let got: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["late"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("evt_t0", true), ("evt_t1", true), ("evt_t2", false)],
        "{out}"
    );
    let (code, out) = inbox_cli(&url, &["list", "--object", "sub_1"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("late (arrived after a later event)"),
        "{out}"
    );
    let (code, _) = inbox_cli(&url, &["list", "--object", "sub_404"]);
    assert_eq!(code, Some(5), "no events about it");
}

/// Several handlers of one type: `list` and `show` show each handler's
/// state (and `show` its attempts' history); `retry --handler NAME` — alone,
/// the backfill form — makes only that handler run again.
#[test]
fn each_handlers_state_is_shown_and_retried_alone() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = std::env::temp_dir().join(format!("plugipay-cli-handlers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("inbox.sqlite3").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger_runs = Arc::new(AtomicUsize::new(0));
    let healed = Arc::new(AtomicBool::new(false));
    let run = |want: State| {
        let (ledger_runs, healed) = (ledger_runs.clone(), healed.clone());
        rt.block_on(async {
            let backend = inbox_from_url(&url).await.expect("the inbox");
            let inbox = Inbox::builder(backend)
                .max_attempts(2)
                .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
                .poll_interval(Duration::from_millis(20))
                .on(("plugipay.invoice.paid.v1", "ledger"), move |_e| {
                    let l = ledger_runs.clone();
                    async move {
                        l.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(())
                    }
                })
                .on(("plugipay.invoice.paid.v1", "notify"), move |_e| {
                    let h = healed.clone();
                    async move {
                        if h.load(Ordering::SeqCst) {
                            Ok(())
                        } else {
                            Err(std::io::Error::other("smtp down"))
                        }
                    }
                })
                .build()
                .unwrap();
            inbox
                .receive(&received("plugipay.invoice.paid.v1", "evt_two").await)
                .await;
            let workers = inbox.start_workers(1);
            for _ in 0..200 {
                if inbox.stats().await.unwrap().count(want) == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            workers.shutdown(Duration::from_secs(5)).await;
        });
    };
    run(State::Dead);
    assert_eq!(ledger_runs.load(Ordering::SeqCst), 1);

    let (_, out) = inbox_cli(&url, &["list", "--state", "dead"]);
    assert!(
        out.contains("evt_two") && out.contains("handlers ledger=done,notify=dead"),
        "{out}"
    );
    let (code, out) = inbox_cli(&url, &["show", "evt_two"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("handler ledger: done, attempts 1"), "{out}");
    assert!(
        out.contains("handler notify: dead, attempts 2, last error: handler error: smtp down"),
        "{out}"
    );
    assert_eq!(
        out.matches("Failed").count(),
        2,
        "notify's two attempts: {out}"
    );
    let (_, out) = inbox_cli(&url, &["show", "evt_two", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(shown["handlers"][1]["name"], "notify", "{shown}");
    assert_eq!(
        shown["handlers"][1]["history"].as_array().map(Vec::len),
        Some(2)
    );

    let (code, out) = inbox_cli(&url, &["retry", "--handler", "notify", "--since", "1h"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 event pending again"), "{out}");
    healed.store(true, Ordering::SeqCst);
    run(State::Done);
    assert_eq!(
        ledger_runs.load(Ordering::SeqCst),
        1,
        "the retry of notify ran ledger"
    );
    let (_, out) = inbox_cli(&url, &["list", "--state", "done"]);
    assert!(out.contains("handlers ledger=done,notify=done"), "{out}");
}

/// `inbox ui`: a console on 127.0.0.1 behind a token of its own, printed
/// as a login URL; the URL signs a browser in, the token is a bearer token
/// too, and nothing is shown without it.
#[test]
fn inbox_ui_serves_the_console_behind_a_fresh_token() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("plugipay-cli-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("inbox.sqlite3").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = inbox_from_url(&url).await.expect("the inbox");
        let inbox = Inbox::builder(backend).build().unwrap();
        inbox
            .receive(&received("plugipay.payout.paid.v1", "evt_ui").await)
            .await;
    });
    let start = || {
        let mut cmd = Command::new(BIN);
        cmd.env("PLUGIPAY_WEBHOOK_SECRET", SECRET)
            .env("PLUGIPAY_INBOX_URL", &url)
            .args(["inbox", "ui", "--port", "0"])
            .stderr(Stdio::null());
        let process = Process::spawn(cmd);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let line = loop {
            if let Some(l) = process
                .drain(Duration::from_millis(200))
                .into_iter()
                .find(|l| l.starts_with("console on "))
            {
                break l;
            }
            assert!(std::time::Instant::now() < deadline, "no login URL");
        };
        (process, line["console on ".len()..].trim().to_owned())
    };
    let (process, login) = start();
    let (_second, other) = start();
    let token = login.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(token.len(), 48, "{login}");
    assert_ne!(
        other.split("token=").nth(1).unwrap(),
        token,
        "a fresh token each run"
    );
    let rest = login.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    assert!(addr.starts_with("127.0.0.1:"), "{login}");
    let get = |path: &str, extra: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let answer = get(path, "");
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.contains("HttpOnly") && answer.contains("SameSite=Strict"));
    let answer = get("/console/events", "");
    assert!(
        answer.starts_with("HTTP/1.1 401") && !answer.contains("evt_ui"),
        "{answer}"
    );
    let answer = get(
        "/console/events",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("data-event-id=\"evt_ui\" data-state=\"skipped\""),
        "{answer}"
    );
    // Re-verified with the configured secret.
    let answer = get(
        "/console/events/evt_ui",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert!(
        answer.contains("verify against the stored header"),
        "{answer}"
    );
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signed id (and type, and a handler's error) holding an escape sequence
/// and a newline reaches the terminal escaped: `inbox list` and `inbox
/// show` print one line per record with `\u{1b}` and `\u{a}` instead, and
/// `--json` stays valid JSON with no raw control character.
#[test]
fn signed_fields_cannot_steer_the_terminal_or_forge_lines() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-escape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("inbox.sqlite3");
    let _ = std::fs::remove_file(&db);
    let url = format!("sqlite://{}", db.display());
    let hostile = "evt_\u{1b}[2J\nevt_forged  plugipay.invoice.paid.v1  done";
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let inbox = Inbox::builder(inbox_from_url(&url).await.expect("inbox"))
                .max_attempts(1)
                .on("plugipay.invoice.paid.v1", |_e: WebhookEvent| async {
                    Err::<(), _>(std::io::Error::other("bad\u{1b}]0;title\u{7}\nline"))
                })
                .build()
                .expect("inbox");
            let ev = received("plugipay.invoice.paid.v1", hostile).await;
            assert_eq!(
                inbox.receive(&ev).await,
                plugipay_webhook_dispatch::Outcome::Stored
            );
            let workers = inbox.start_workers(1);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while inbox.stats().await.unwrap().count(State::Dead) < 1 {
                assert!(std::time::Instant::now() < deadline, "never dead");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            workers.shutdown(Duration::from_secs(5)).await;
        });
    let (code, list) = inbox_cli(&url, &["list"]);
    assert_eq!(code, Some(0), "{list}");
    assert!(
        !list.contains('\u{1b}') && !list.contains('\u{7}'),
        "{list:?}"
    );
    assert_eq!(list.lines().count(), 1, "one record, one line: {list:?}");
    assert!(list.contains("evt_\\u{1b}[2J\\u{a}evt_forged"), "{list:?}");
    let (_, show) = inbox_cli(&url, &["show", hostile]);
    assert!(
        !show.contains('\u{1b}') && !show.contains('\u{7}'),
        "{show:?}"
    );
    assert!(
        show.contains("bad\\u{1b}]0;title\\u{7}\\u{a}line"),
        "{show:?}"
    );
    let (_, json) = inbox_cli(&url, &["list", "--json"]);
    assert!(
        !json.chars().any(|c| c.is_control() && c != '\n'),
        "{json:?}"
    );
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
        if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
            assert_eq!(id, hostile, "the same JSON value");
        }
    }
}
