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
        inbox
            .receive(&received("plugipay.invoice.paid.v1", "evt_done").await)
            .await;
        inbox
            .receive(&received("plugipay.payout.paid.v1", "evt_dead").await)
            .await;
        inbox
            .receive(&received("plugipay.brand.new.v1", "evt_skipped").await)
            .await;
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
            stats["skipped"].as_u64()
        ),
        (Some(0), Some(0), Some(1), Some(1), Some(1)),
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

    let (_, out) = inbox_cli(url, &["retry", "--dead"]);
    assert!(out.contains("1 event pending again"), "{out}");
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

    // Prune removes done and skipped only.
    std::thread::sleep(Duration::from_millis(1100));
    let (_, out) = inbox_cli(url, &["prune", "--older-than", "1s"]);
    assert!(out.starts_with("1 done or skipped event deleted"), "{out}");
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
