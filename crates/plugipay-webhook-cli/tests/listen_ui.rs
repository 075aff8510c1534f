//! `listen --ui`, with the real binary: every delivery — verified or not —
//! shown with its verdict and the `verify --explain` diagnosis, the JSON
//! diff of two, Replay (signed afresh, to `--forward-to`) and pin behind
//! the CSRF token, the verified events in the console's inbox with no
//! retry offered, nothing without the printed token, and the temporary
//! database gone when listen stops.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugipay_webhook::testing;
use plugipay_webhook_conformance::plumbing::Process;

const BIN: &str = env!("CARGO_BIN_EXE_plugipay-webhook");
const FRONT: &str = "whsec_front_ui";
const APP: &str = "whsec_app_ui";

fn listen(secret: &str, extra: &[&str]) -> (Process, SocketAddr) {
    let mut cmd = Command::new(BIN);
    cmd.env("PLUGIPAY_WEBHOOK_SECRET", secret)
        .env_remove("PORT")
        .env_remove("PLUGIPAY_FORWARD_SECRET")
        .env("NO_COLOR", "1")
        .args(["listen", "--port", "0", "--json"])
        .args(extra)
        .stderr(Stdio::null());
    let process = Process::spawn(cmd);
    let addr = process.listening_addr();
    (process, addr)
}

/// One HTTP/1.1 exchange: the status and the whole answer.
fn http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    (status, out)
}

fn deliver(addr: SocketAddr, body: &[u8], signature: Option<String>) -> u16 {
    let sig = signature
        .map(|s| format!("\r\nX-Plugipay-Signature: {s}"))
        .unwrap_or_default();
    http(
        addr,
        &format!("POST /webhooks/plugipay HTTP/1.1\r\nContent-Type: application/json{sig}"),
        body,
    )
    .0
}

fn body(amount: u32) -> String {
    format!(
        r#"{{"id":"evt_ui_1","type":"plugipay.invoice.paid.v1","data":{{"object":{{"id":"inv_1","amount":{amount}}}}}}}"#
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn listen_ui_keeps_every_delivery_with_its_verdict_diff_replay_and_pin() {
    let (app, app_addr) = listen(APP, &[]);
    let (front, addr) = listen(
        FRONT,
        &[
            "--ui",
            "--forward-to",
            &format!("http://{app_addr}/hook"),
            "--forward-secret",
            APP,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.starts_with("deliveries kept in "))
    {
        assert!(Instant::now() < deadline, "no console lines: {printed:?}");
        printed.extend(front.drain(Duration::from_millis(200)));
    }
    let login = printed
        .iter()
        .find_map(|l| l.strip_prefix("console on "))
        .expect("a login URL")
        .to_owned();
    assert!(
        login.starts_with(&format!("http://{addr}/console/login?token=")),
        "{login}"
    );
    let token = login.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(token.len(), 48, "{login}");
    let dir: PathBuf = printed
        .iter()
        .find_map(|l| l.strip_prefix("deliveries kept in "))
        .and_then(|l| l.strip_suffix(" until listen stops"))
        .expect("the directory")
        .into();
    assert!(dir.is_dir(), "{}", dir.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the directory is the owner's: {mode:o}");
    }

    // 1 and 2 verify (the same event, another amount: a redelivery that
    // changed); 3 had a newline added after signing; 4 carries no header.
    let t = now();
    let (a, b) = (body(100), body(250));
    assert_eq!(
        deliver(
            addr,
            a.as_bytes(),
            Some(testing::sign_header(FRONT, t, a.as_bytes()))
        ),
        204
    );
    assert_eq!(
        deliver(
            addr,
            b.as_bytes(),
            Some(testing::sign_header(FRONT, t, b.as_bytes()))
        ),
        204
    );
    let newline = format!("{a}\n");
    assert_eq!(
        deliver(
            addr,
            newline.as_bytes(),
            Some(testing::sign_header(FRONT, t, a.as_bytes()))
        ),
        400
    );
    assert_eq!(deliver(addr, a.as_bytes(), None), 400);
    assert_eq!(
        app.drain(Duration::from_millis(500)).len(),
        2,
        "two forwarded"
    );

    let auth = format!("Authorization: Bearer {token}");
    let get = |path: &str| http(addr, &format!("GET {path} HTTP/1.1\r\n{auth}"), b"");
    let post = |path: &str, form: &str| {
        http(
            addr,
            &format!(
                "POST {path} HTTP/1.1\r\n{auth}\r\nContent-Type: application/x-www-form-urlencoded"
            ),
            form.as_bytes(),
        )
    };

    // Nothing without the token.
    let (status, page) = http(addr, "GET /console/deliveries HTTP/1.1", b"");
    assert_eq!(status, 401, "{page}");
    assert!(!page.contains("evt_ui_1"));

    // The list: newest first, each with its verdict.
    let (status, page) = get("/console/deliveries");
    assert_eq!(status, 200, "{page}");
    let rows: Vec<&str> = page
        .split("<tr data-delivery=\"")
        .skip(1)
        .map(|r| &r[..r.find('>').unwrap()])
        .collect();
    assert_eq!(
        rows,
        [
            "4\" data-verdict=\"signature_missing\"",
            "3\" data-verdict=\"signature_invalid\"",
            "2\" data-verdict=\"verified\"",
            "1\" data-verdict=\"verified\"",
        ]
    );
    let (_, rejected_only) = get("/console/deliveries?verdict=rejected");
    assert_eq!(rejected_only.matches("<tr data-delivery=").count(), 2);

    // The rejected one with its diagnosis, and the bytes as received.
    let (status, page) = get("/console/deliveries/3");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("a trailing newline was added to the body after signing"),
        "{page}"
    );
    assert!(page.contains("Body (") && page.contains(&format!("({} bytes)", newline.len())));
    assert!(
        !page.contains(">Replay</button>"),
        "a rejected delivery is not replayed"
    );

    // The diff of the two verified deliveries: the amount changed.
    let (status, page) = get("/console/deliveries/diff?a=1&b=2");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(
            "<tr data-change=\"changed\"><th scope=\"row\"><code>/data/object/amount</code>"
        ),
        "{page}"
    );
    assert!(page.contains("<code>100</code>") && page.contains("<code>250</code>"));
    assert_eq!(page.matches("data-change=").count(), 1, "{page}");
    assert!(page.contains("x-plugipay-signature") || page.contains("The same headers"));

    // The verified event is in the console's inbox (one: 2 was a
    // redelivery of it), with no retry on offer.
    let (_, overview) = get("/console/");
    assert!(
        overview.contains("data-state-count=\"skipped\">1<"),
        "{overview}"
    );
    let (_, event) = get("/console/events/evt_ui_1");
    assert!(
        event.contains("verify against the stored header"),
        "{event}"
    );
    assert!(!event.contains(">Retry</button>"), "{event}");
    let (status, _) = post("/console/events/evt_ui_1/retry", "csrf=x");
    assert_eq!(status, 403);

    // Pin: refused without the CSRF token, done with it.
    let (_, page) = get("/console/deliveries/1");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    let (status, page) = post("/console/deliveries/1/pin", "pinned=yes");
    assert_eq!(status, 403, "{page}");
    let (status, page) = post(
        "/console/deliveries/1/pin",
        &format!("csrf={csrf}&pinned=yes"),
    );
    assert_eq!(status, 303, "{page}");
    let (_, pinned) = get("/console/deliveries?pinned=1");
    assert!(
        pinned.contains("<tr data-delivery=\"1\" data-verdict=\"verified\" data-pinned=\"yes\">"),
        "{pinned}"
    );
    assert_eq!(pinned.matches("<tr data-delivery=").count(), 1);

    // Replay: the same bytes, signed afresh with the app's secret, to the app.
    let (status, page) = post("/console/deliveries/1/replay", "pinned=yes");
    assert_eq!(status, 403, "no CSRF token, no replay: {page}");
    let (status, page) = post("/console/deliveries/1/replay", &format!("csrf={csrf}"));
    assert_eq!(status, 303, "{page}");
    let replayed = app.drain(Duration::from_millis(500));
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    let line: serde_json::Value = serde_json::from_str(&replayed[0]).unwrap();
    assert_eq!(line["ok"], true, "the app verified it: {line}");
    assert_eq!(line["object"]["amount"], 100);
    let (_, page) = get("/console/deliveries/1?notice=replayed");
    assert!(page.contains("Replayed: 204 in "), "{page}");
    let (status, page) = post("/console/deliveries/3/replay", &format!("csrf={csrf}"));
    assert_eq!(status, 502, "{page}");
    assert!(
        page.contains("only a verified delivery is replayed"),
        "{page}"
    );
    assert!(app.drain(Duration::from_millis(300)).is_empty());

    // Stopping removes the temporary database.
    let pid = front.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(front);
}

/// The diagnosis judges a delivery as the receiver did: with its
/// `--tolerance`, a delivery signed a minute ago is stale, and the page says
/// so instead of "nothing to explain".
#[test]
fn the_diagnosis_uses_the_receivers_own_tolerance() {
    let (front, addr) = listen(FRONT, &["--ui", "--tolerance", "10"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.starts_with("deliveries kept in "))
    {
        assert!(Instant::now() < deadline, "no console lines: {printed:?}");
        printed.extend(front.drain(Duration::from_millis(200)));
    }
    let token = printed
        .iter()
        .find_map(|l| l.split("token=").nth(1))
        .expect("a token")
        .to_owned();
    let a = body(100);
    let signed = testing::sign_header(FRONT, now() - 60, a.as_bytes());
    assert_eq!(deliver(addr, a.as_bytes(), Some(signed)), 400);
    let (status, page) = http(
        addr,
        &format!("GET /console/deliveries/1 HTTP/1.1\r\nAuthorization: Bearer {token}"),
        b"",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-verdict=\"signature_stale\""), "{page}");
    assert!(
        page.contains("the timestamp is outside the tolerance"),
        "{page}"
    );
    assert!(!page.contains("nothing to explain"), "{page}");
}
