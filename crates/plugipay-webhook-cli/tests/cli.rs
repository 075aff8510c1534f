//! The real `plugipay-webhook` binary, run as a user runs it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use plugipay_webhook_conformance::plumbing::Process;
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_plugipay-webhook");
const SECRET: &str = "whsec_cli_tests";

fn cli() -> Command {
    let mut c = Command::new(BIN);
    c.env("PLUGIPAY_WEBHOOK_SECRET", SECRET).env_remove("PORT");
    c
}

fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A command that refuses its arguments exits before reading standard
    // input; the closed pipe is then its answer, not a test failure.
    if let Err(e) = child.stdin.take().expect("stdin").write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BODY: &[u8] = br#"{"id":"evt_cli","type":"plugipay.invoice.paid.v1","account_id":"acc_1","data":{"object":{"id":"inv_1"}}}"#;

fn sign(t: i64) -> String {
    let mut cmd = cli();
    cmd.args(["sign", "--timestamp", &t.to_string(), "-"]);
    let out = run_with_stdin(cmd, BODY);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

fn verify(header: &str, body: &[u8], extra: &[&str]) -> Output {
    let mut cmd = cli();
    cmd.args(["verify", "--header", header])
        .args(extra)
        .arg("-");
    run_with_stdin(cmd, body)
}

#[test]
fn sign_output_verifies_with_verify_and_with_pythons_hmac() {
    let t = 1_767_225_600;
    let header = sign(t);
    assert!(header.starts_with(&format!("t={t},v1=")), "{header}");

    let out = verify(&header, BODY, &["--now", &t.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["id"], "evt_cli");
    assert_eq!(v["type"], "plugipay.invoice.paid.v1");
    assert_eq!(v["account_id"], "acc_1");
    assert_eq!(v["matched_secret"], 0);

    // The seed's recipe, computed by Python's standard library.
    let py = Command::new("python3")
        .args([
            "-c",
            "import hashlib,hmac,sys; s,t,b=sys.argv[1],sys.argv[2],sys.stdin.buffer.read(); \
             print(hmac.new(s.encode(), f'{t}.'.encode()+b, hashlib.sha256).hexdigest())",
            SECRET,
            &t.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(BODY)?;
            c.wait_with_output()
        })
        .expect("python3 runs");
    assert!(py.status.success());
    assert_eq!(header, format!("t={t},v1={}", text(&py.stdout).trim()));
}

#[test]
fn every_error_code_has_its_own_exit_code() {
    let t = 1_767_225_600;
    let header = sign(t);
    let now = t.to_string();
    // (header, body, extra args, exit code, error code)
    type Case<'a> = (&'a str, &'a [u8], &'a [&'a str], i32, &'a str);
    let cases: [Case<'_>; 4] = [
        ("", BODY, &["--now", &now], 10, "signature_missing"),
        ("t=1", BODY, &["--now", &now], 11, "signature_malformed"),
        (
            &header,
            BODY,
            &["--now", "1767229999"],
            12,
            "signature_stale",
        ),
        (&header, b"{}", &["--now", &now], 13, "signature_invalid"),
    ];
    for (h, body, extra, code, name) in cases {
        let out = verify(h, body, extra);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name}: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stdout).starts_with(name),
            "{name}: {}",
            text(&out.stdout)
        );
        let mut json_args = extra.to_vec();
        json_args.push("--json");
        let out = verify(h, body, &json_args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            (v["ok"].as_bool(), v["error"].as_str()),
            (Some(false), Some(name))
        );
        assert!(!text(&out.stdout).contains(SECRET));
    }
    // No secret at all: 3, and usage errors keep clap's 2.
    let out = Command::new(BIN)
        .env_remove("PLUGIPAY_WEBHOOK_SECRET")
        .args(["verify", "--header", "t=1,v1=00", "/dev/null"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("PLUGIPAY_WEBHOOK_SECRET"));
    let out = cli().args(["verify"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secret_sources_and_rotation() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("secret");
    std::fs::write(&file, "whsec_new\nwhsec_old\n").expect("write");
    // sign with the old secret only, verify with the keyring from the file
    let out = run_with_stdin(
        {
            let mut c = cli();
            c.args(["--secret", "whsec_old", "sign", "-t", "100"]);
            c
        },
        BODY,
    );
    let header = text(&out.stdout).trim().to_owned();
    let out = run_with_stdin(
        {
            let mut c = cli();
            c.args(["--secret-file", file.to_str().expect("utf-8 path")])
                .args(["verify", "-H", &header, "--now", "100", "--json"]);
            c
        },
        BODY,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["matched_secret"], 1, "{v}");
    // sign with a keyring: one v1 per secret
    let out = run_with_stdin(
        {
            let mut c = cli();
            c.env("PLUGIPAY_WEBHOOK_SECRET", "whsec_a, whsec_b")
                .args(["sign", "-t", "5"]);
            c
        },
        BODY,
    );
    assert_eq!(text(&out.stdout).matches("v1=").count(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

struct Listener {
    process: Process,
    url: String,
}

fn listen() -> Listener {
    listen_with(&["--json"])
}

fn listen_with(extra: &[&str]) -> Listener {
    let mut cmd = cli();
    cmd.args(["listen", "--port", "0"])
        .args(extra)
        .stderr(Stdio::null());
    let process = Process::spawn(cmd);
    let addr = process.listening_addr();
    Listener {
        process,
        url: format!("http://{addr}/webhooks/plugipay"),
    }
}

fn drain(rx: &mpsc::Receiver<String>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        out.push(serde_json::from_str(&l).unwrap_or_else(|_| panic!("not JSON: {l}")));
    }
    out
}

#[test]
fn send_to_listen_round_trips() {
    let l = listen();
    let out = cli()
        .args([
            "send",
            &l.url,
            "--type",
            "plugipay.invoice.paid.v1",
            "--id",
            "evt_rt",
            "--repeat",
            "2",
            "--json",
        ])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let sent: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|s| s["status"] == 204 && s["latency_ms"].as_f64().is_some()));
    let got = drain(&l.process.lines);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0]["id"].as_str(), got[0]["duplicate"].as_bool()),
        (Some("evt_rt"), Some(false))
    );
    assert_eq!(got[1]["duplicate"], true);
    assert_eq!(got[0]["type"], "plugipay.invoice.paid.v1");
    assert!(
        got[0]["object"]["total"].as_i64().is_some(),
        "realistic invoice: {}",
        got[0]["object"]
    );

    // Every catalog type sends a realistic object that verifies.
    let types = cli()
        .args(["send", &l.url, "--list-types"])
        .output()
        .expect("list");
    let types: Vec<String> = text(&types.stdout).lines().map(str::to_owned).collect();
    assert_eq!(types.len(), 6);
    for t in &types {
        let out = cli()
            .args(["send", &l.url, "--type", t])
            .output()
            .expect("send");
        assert_eq!(out.status.code(), Some(0), "{t}: {}", text(&out.stdout));
    }
    let got = drain(&l.process.lines);
    assert_eq!(got.len(), 6);
    for (g, t) in got.iter().zip(&types) {
        assert_eq!(g["type"].as_str(), Some(t.as_str()));
        assert!(
            g["object"]["id"].as_str().is_some_and(|id| id.len() > 10),
            "{g}"
        );
    }

    // Stale and tampered deliveries are refused, with a non-zero exit.
    for (flag, code) in [
        ("--stale", "signature_stale"),
        ("--tamper", "signature_invalid"),
    ] {
        let out = cli()
            .args([
                "send",
                &l.url,
                "--type",
                "plugipay.refund.succeeded.v1",
                flag,
            ])
            .output()
            .expect("send");
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(
            text(&out.stdout).contains(&format!(r#"{{"error":"{code}"}}"#)),
            "{}",
            text(&out.stdout)
        );
        let got = drain(&l.process.lines);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0]["ok"].as_bool(), got[0]["error"].as_str()),
            (Some(false), Some(code))
        );
    }

    // Many distinct events, concurrently: a summary with throughput and percentiles.
    let out = cli()
        .args([
            "send",
            &l.url,
            "--type",
            "plugipay.payout.paid.v1",
            "--count",
            "40",
            "--concurrency",
            "4",
            "--json",
        ])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(s["deliveries"], 40);
    assert_eq!(s["statuses"]["204"], 40);
    assert!(s["throughput_rps"].as_f64().is_some_and(|r| r > 0.0));
    assert!(s["p99_ms"].as_f64() >= s["p50_ms"].as_f64());
    let got = drain(&l.process.lines);
    let ids: std::collections::HashSet<_> = got.iter().map(|g| g["id"].to_string()).collect();
    assert_eq!(ids.len(), 40, "distinct events");

    // A steady offered load: 12 events at 20/s start over 0.55 s at the
    // least (the 12th at 11/20 s), however high the concurrency.
    let out = cli()
        .args([
            "send",
            &l.url,
            "--type",
            "plugipay.payout.paid.v1",
            "--count",
            "12",
            "--concurrency",
            "12",
            "--rate",
            "20",
            "--json",
        ])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(
        (s["deliveries"].as_u64(), s["rate"].as_u64()),
        (Some(12), Some(20))
    );
    assert!(s["elapsed_s"].as_f64().is_some_and(|e| e >= 0.55), "{s}");
    assert_eq!(drain(&l.process.lines).len(), 12);
    let zero = cli()
        .args(["send", &l.url, "--rate", "0"])
        .output()
        .expect("send");
    assert_eq!(zero.status.code(), Some(2), "--rate 0 is refused");
}

#[test]
fn retry_backs_off_and_signs_every_attempt_afresh() {
    // A receiver that fails twice, then accepts; it records each attempt's header.
    let server = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = server.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for status in [
            "500 Internal Server Error",
            "503 Service Unavailable",
            "204 No Content",
        ] {
            let (mut s, _) = server.accept().expect("accept");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).expect("read");
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = text(&buf);
            let sig = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("x-plugipay-signature:")
                        .then(|| l[21..].trim().to_owned())
                })
                .expect("signature header");
            seen.push((std::time::Instant::now(), sig));
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
        seen
    });
    let out = cli()
        .args([
            "send",
            &format!("http://{addr}/hook"),
            "--type",
            "plugipay.invoice.paid.v1",
        ])
        .args(["--retry", "--max-attempts", "5", "--backoff-ms", "1000"])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("attempt 1") && lines[0].contains("500"));
    assert!(lines[2].contains("attempt 3") && lines[2].contains("204"));
    let seen = handle.join().expect("server");
    let ts: Vec<i64> = seen
        .iter()
        .map(|(_, h)| {
            h.strip_prefix("t=")
                .and_then(|r| r.split(',').next())
                .and_then(|t| t.parse().ok())
                .expect("t")
        })
        .collect();
    // Backoff doubles (≈1 s, then ≈2 s) and each attempt carries its own, later timestamp.
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps[0] >= Duration::from_millis(900) && gaps[1] >= Duration::from_millis(1900),
        "{gaps:?}"
    );
    assert!(ts[0] < ts[2] && ts[0] <= ts[1] && ts[1] <= ts[2], "{ts:?}");
}

#[test]
fn sign_refuses_a_negative_timestamp() {
    // `--timestamp=-5` reaches the value parser (a bare `-5` reads as a flag).
    for t in ["-5", "-1", "9223372036854775808"] {
        let mut cmd = cli();
        cmd.args(["sign", &format!("--timestamp={t}"), "-"]);
        let out = run_with_stdin(cmd, BODY);
        assert_eq!(out.status.code(), Some(2), "{t}: {}", text(&out.stdout));
        assert!(out.stdout.is_empty(), "{t}: no header printed");
    }
    let mut cmd = cli();
    cmd.args(["sign", "-t", "9223372036854775807", "-"]);
    let out = run_with_stdin(cmd, BODY);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn send_refuses_more_deliveries_than_it_can_keep() {
    let out = cli()
        .args([
            "send",
            "http://127.0.0.1:9/",
            "--type",
            "plugipay.invoice.paid.v1",
            "--count",
            "4294967296",
            "--repeat",
            "4294967296",
        ])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("10000000"),
        "{}",
        text(&out.stderr)
    );
}

/// Ids, types and account ids come from signed bodies, but a signature
/// proves who sent them, not that they hold no terminal escapes.
#[test]
fn listen_escapes_control_characters_from_signed_bodies() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let body = dir.join("body.json");
    std::fs::write(
        &body,
        r#"{"id":"evt_\u001b[2J\u009b31m\u202eevil","type":"plugipay.invoice.paid.v1","account_id":"acc_\u0007\u007f","data":{"object":{"note":"\u001b]0;title\u0007"}}}"#,
    )
    .expect("write");
    let steers = |c: char| c.is_control() && c != '\n' || ('\u{202a}'..='\u{202e}').contains(&c);
    for mode in [&["--json"][..], &[][..]] {
        let l = listen_with(mode);
        let out = cli()
            .args(["send", &l.url, "--body"])
            .arg(&body)
            .output()
            .expect("send");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        let mut lines = Vec::new();
        while let Ok(line) = l.process.lines.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
        let all = lines.join("\n");
        assert!(!all.is_empty(), "{mode:?}: nothing printed");
        assert!(!all.chars().any(steers), "{mode:?}: {all:?}");
        if mode.is_empty() {
            assert!(all.contains(r"evt_\u{1b}[2J\u{9b}31m\u{202e}evil"), "{all}");
            assert!(all.contains(r"acc_\u{7}\u{7f}"), "{all}");
        } else {
            // Still JSON, and still the same id once parsed.
            let v: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
            assert_eq!(v["id"], "evt_\u{1b}[2J\u{9b}31m\u{202e}evil");
            assert_eq!(v["account_id"], "acc_\u{7}\u{7f}");
        }
    }
}

/// `--forward-secret` from the environment or a file, never in `Debug`.
#[test]
fn the_forward_secret_comes_from_the_environment_or_a_file() {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("forward.secret");
    std::fs::write(&file, "whsec_from_file\n").unwrap();
    for how in ["env", "file"] {
        let mut cmd = Command::new(BIN);
        cmd.env("PLUGIPAY_WEBHOOK_SECRET", "whsec_in")
            .args([
                "listen",
                "--port",
                "0",
                "--json",
                "--forward-to",
                "http://127.0.0.1:9/app",
            ])
            .stderr(std::process::Stdio::null());
        if how == "env" {
            cmd.env("PLUGIPAY_FORWARD_SECRET", "whsec_from_env");
        } else {
            cmd.arg("--forward-secret-file").arg(&file);
        }
        let listener = plugipay_webhook_conformance::plumbing::Process::spawn(cmd);
        let _addr = listener.listening_addr();
    }
    // A file that holds nothing is refused.
    std::fs::write(&file, "\n").unwrap();
    let out = Command::new(BIN)
        .env("PLUGIPAY_WEBHOOK_SECRET", "whsec_in")
        .args([
            "listen",
            "--port",
            "0",
            "--forward-to",
            "http://127.0.0.1:9/app",
            "--forward-secret-file",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `send --list-types` needs no URL, and a closed pipe ends it quietly.
#[test]
fn list_types_needs_no_url_and_a_closed_pipe_ends_quietly() {
    let out = Command::new(BIN)
        .args(["send", "--list-types"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("plugipay.invoice.paid.v1"));
    for args in [&["send", "--list-types"][..], &["completions", "bash"]] {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 1`: the reader goes away at once.
        let mut stdout = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut stdout, &mut one).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `send --count`: `--json` lists every delivery (its event id, status,
/// attempts), so a load run can be checked for exactly-once against what
/// the receiver recorded; deliveries nothing answered are summed up with
/// their cause, not as a bare `× error`.
#[test]
fn send_count_reports_every_delivery_and_the_cause_of_errors() {
    let l = listen();
    let out = cli()
        .args([
            "send",
            &l.url,
            "--type",
            "plugipay.invoice.paid.v1",
            "--count",
            "6",
        ])
        .args(["--concurrency", "3", "--json"])
        .output()
        .expect("send");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    let records = report["records"].as_array().expect("records");
    assert_eq!(records.len(), 6, "{report}");
    assert_eq!(report["records_omitted"], 0, "{report}");
    let sent: std::collections::BTreeSet<&str> =
        records.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(sent.len(), 6, "six distinct ids: {records:?}");
    assert!(records
        .iter()
        .all(|r| r["status"] == 204 && r["attempts"] == 1));
    let got: std::collections::BTreeSet<String> = drain(&l.process.lines)
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        got,
        sent.iter().map(|s| (*s).to_owned()).collect(),
        "the listener saw exactly the ids send reported"
    );

    // Nothing listens on this port: the cause is said.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}/webhooks/plugipay");
    let out = cli()
        .args([
            "send",
            &closed,
            "--type",
            "plugipay.invoice.paid.v1",
            "--count",
            "3",
        ])
        .output()
        .expect("send");
    let said = text(&out.stdout);
    assert!(
        said.contains("3 × error (3 ") && said.contains("refused"),
        "{said}"
    );
}
