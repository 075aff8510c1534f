//! The developer workflows, with the real binary: forward to an app, save
//! then replay byte-exact, HTTPS with a local certificate, fixtures with
//! overrides, `verify --explain`, completions and `--version`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use plugipay_webhook::testing;
use plugipay_webhook_conformance::plumbing::Process;

const BIN: &str = env!("CARGO_BIN_EXE_plugipay-webhook");

fn cli(secret: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env("PLUGIPAY_WEBHOOK_SECRET", secret)
        .env_remove("PORT")
        .env("NO_COLOR", "1");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plugipay-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// A `listen` process and its address.
struct Listening {
    process: Process,
    addr: SocketAddr,
}

impl Listening {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        self.process
            .drain(Duration::from_millis(500))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect()
    }
}

fn listen(secret: &str, extra: &[&str]) -> Listening {
    let mut cmd = cli(secret);
    cmd.args(["listen", "--port", "0", "--json"])
        .args(extra)
        .stderr(Stdio::null());
    let process = Process::spawn(cmd);
    let addr = process.listening_addr();
    Listening { process, addr }
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run")
}

/// The bodies saved in `dir`, in order.
fn saved_bodies(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("saved")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
            base64::engine::general_purpose::STANDARD
                .decode(v["body_b64"].as_str().expect("body"))
                .expect("base64")
        })
        .collect()
}

/// Odd but valid JSON: a re-serialising middleman would change these bytes.
const BODY: &str = "{ \"id\":\"evt_wf_1\",  \"type\":\"plugipay.invoice.paid.v1\",\n \"data\":{\"object\":{\"total\":4200 }}}";

#[test]
fn forward_to_an_app_byte_exact_signed_afresh_and_its_status_reaches_the_sender() {
    let dir = tmp("forward");
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, BODY).unwrap();
    let app_saved = dir.join("app");
    // The application under development: its own secret, fails once.
    let app = listen(
        "whsec_app",
        &["--fail-first", "1", "--save", app_saved.to_str().unwrap()],
    );
    let front = listen(
        "whsec_front",
        &[
            "--forward-to",
            &app.url("/hook"),
            "--forward-secret",
            "whsec_app",
        ],
    );
    let send = |expect: i32| {
        let mut cmd = cli("whsec_front");
        cmd.args([
            "send",
            &front.url("/x"),
            "--body",
            body_file.to_str().unwrap(),
            "--json",
        ]);
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(expect), "{}", text(&out.stdout));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        line["status"].as_u64()
    };
    // The app's 500 reaches the sender; then its 204.
    assert_eq!(send(1), Some(500));
    assert_eq!(send(0), Some(204));
    let forwarded = front.lines();
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    assert_eq!(forwarded[0]["forward"]["status"], 500);
    assert!(forwarded[1]["forward"]["latency_ms"].as_f64().is_some());
    // The app verified both with its own secret: a fresh, valid signature,
    // over the exact bytes sent.
    let app_lines = app.lines();
    assert!(app_lines.iter().all(|l| l["ok"] == true), "{app_lines:?}");
    assert_eq!(app_lines[1]["id"], "evt_wf_1");
    let bodies = saved_bodies(&app_saved);
    assert_eq!(bodies.len(), 2);
    assert!(bodies.iter().all(|b| b == BODY.as_bytes()));
}

#[test]
fn save_then_replay_byte_exact_and_as_is_reproduces_a_stale_delivery() {
    let dir = tmp("replay");
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, BODY).unwrap();
    let capture = dir.join("capture");
    let recorder = listen("whsec_rx", &["--save", capture.to_str().unwrap()]);
    // A valid delivery, then a stale one: both saved, valid or not.
    for extra in [&[][..], &["--stale"][..]] {
        let mut cmd = cli("whsec_rx");
        cmd.args([
            "send",
            &recorder.url("/hook"),
            "--body",
            body_file.to_str().unwrap(),
        ])
        .args(extra);
        run(cmd);
    }
    let lines = recorder.lines();
    assert_eq!(
        (lines[0]["ok"].as_bool(), lines[1]["error"].as_str()),
        (Some(true), Some("signature_stale"))
    );
    assert_eq!(saved_bodies(&capture).len(), 2);
    // Captures hold every header and the body: the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&capture), 0o700, "the capture directory");
        for f in std::fs::read_dir(&capture).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o600, "a capture");
        }
    }

    // Replayed, signed afresh: only what `listen` verified — the stale one
    // would otherwise reach the app as valid — and the app gets the same
    // bytes.
    let app_saved = dir.join("app");
    let app = listen("whsec_rx", &["--save", app_saved.to_str().unwrap()]);
    let mut cmd = cli("whsec_rx");
    cmd.args([
        "replay",
        capture.to_str().unwrap(),
        "--to",
        &app.url("/hook"),
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("left out 1 capture")
            && err.contains("1 signature_stale")
            && err.contains("--include-rejected"),
        "{err}"
    );
    assert!(app.lines().iter().all(|l| l["ok"] == true));
    assert_eq!(saved_bodies(&app_saved).len(), 1);
    // --include-rejected sends it too, signed afresh: it verifies now.
    let mut cmd = cli("whsec_rx");
    cmd.args([
        "replay",
        "--include-rejected",
        capture.to_str().unwrap(),
        "--to",
        &app.url("/hook"),
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(saved_bodies(&app_saved).len(), 3);

    // --as-is keeps the original headers: the old capture is stale again.
    let mut cmd = cli("whsec_rx");
    cmd.args([
        "replay",
        "--as-is",
        "--include-rejected",
        "--json",
        capture.to_str().unwrap(),
        "--to",
        &app.url("/hook"),
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let results: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(results[1]["status"], 400);
    assert_eq!(results[1]["body"], r#"{"error":"signature_stale"}"#);
}

/// A TLS server with a self-signed certificate for `localhost` (made by
/// rcgen), answering 204 and keeping the signature headers it saw.
fn tls_server(dir: &Path) -> (SocketAddr, PathBuf, Arc<Mutex<Vec<String>>>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let pem = dir.join("cert.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
        cert.signing_key.serialize_der().into(),
    );
    let (addr, seen) = tls_server_with(cert.cert.der().clone(), key);
    (addr, pem, seen)
}

/// A TLS server with `cert` and `key`, answering 204 and keeping the
/// signature headers it saw.
fn tls_server_with(
    cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    key: tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let addr =
        plugipay_webhook_conformance::plumbing::serve_on_thread(move |listener| async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let record = record.clone();
                            async move {
                                if let Some(sig) = req.headers().get("x-plugipay-signature") {
                                    record
                                        .lock()
                                        .unwrap()
                                        .push(sig.to_str().unwrap_or_default().to_owned());
                                }
                                let mut resp = hyper::Response::new(http_body_util::Empty::<
                                    bytes::Bytes,
                                >::new(
                                ));
                                *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    (addr, seen)
}

/// The certificate everyone makes: `openssl req -x509 … -addext
/// subjectAltName=IP:127.0.0.1`, which marks itself `CA:TRUE`. Given with
/// `--cacert` it is trusted as given (curl does the same); without it the
/// refusal says why and what to do; for another name it is refused.
#[test]
fn send_trusts_an_openssl_self_signed_certificate_given_with_cacert() {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let dir = tmp("openssl");
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let (addr, seen) = tls_server_with(
        tokio_rustls::rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap(),
        tokio_rustls::rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap(),
    );
    let send = |host: &str, extra: &[&str]| {
        let mut cmd = cli("whsec_tls");
        cmd.args(["send", &format!("https://{host}:{}/hook", addr.port())])
            .args(["--type", "plugipay.invoice.paid.v1", "--timeout", "10"])
            .args(extra);
        run(cmd)
    };
    let out = send("127.0.0.1", &["--cacert", cert.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "delivered over TLS");
    // Without it: refused, in words.
    let out = send("127.0.0.1", &[]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains("--cacert") && !said.contains("OtherError"),
        "{said}"
    );
    // It is trusted for the name it carries, not for another.
    let out = send("localhost", &["--cacert", cert.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(said.contains("not issued for localhost"), "{said}");
}

#[test]
fn send_over_https_with_a_local_ca_or_insecure() {
    let dir = tmp("https");
    let (addr, pem, seen) = tls_server(&dir);
    let url = format!("https://localhost:{}/hook", addr.port());
    let send = |extra: &[&str]| {
        let mut cmd = cli("whsec_tls");
        cmd.args([
            "send",
            &url,
            "--type",
            "plugipay.invoice.paid.v1",
            "--timeout",
            "10",
        ])
        .args(extra);
        run(cmd)
    };
    let out = send(&["--cacert", pem.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Without the CA the certificate is refused…
    let out = send(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("no answer"),
        "{}",
        text(&out.stdout)
    );
    // …unless told to accept anything.
    let out = send(&["--insecure"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "signed deliveries arrived over TLS"
    );
}

#[test]
fn fixtures_overrides_and_extra_headers() {
    let dir = tmp("fixture");
    let fixture = dir.join("fixture.json");
    std::fs::write(
        &fixture,
        r#"{"id":"{{id}}","type":"plugipay.custom.created.v1","occurred_at":"t{{now}}","data":{"object":{"total":1,"lines":[{"amount":1}]}}}"#,
    )
    .unwrap();
    let saved = dir.join("saved");
    let rx = listen("whsec_fx", &["--save", saved.to_str().unwrap()]);
    let mut cmd = cli("whsec_fx");
    cmd.args([
        "send",
        &rx.url("/hook"),
        "--fixture",
        fixture.to_str().unwrap(),
        "--set",
        "data.object.total=5000",
        "--set",
        "data.object.lines.0.amount=7",
        "--set",
        "data.object.currency=usd",
        "--header",
        "X-Test-Run: 42",
    ]);
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let got = rx.lines();
    let event = &got[0];
    assert_eq!(event["type"], "plugipay.custom.created.v1");
    assert!(event["id"].as_str().unwrap().starts_with("evt_"), "{event}");
    assert!(
        event["occurred_at"].as_str().unwrap().len() > 5,
        "{{{{now}}}} filled in"
    );
    assert_eq!(event["object"]["total"], 5000);
    assert_eq!(event["object"]["lines"][0]["amount"], 7);
    assert_eq!(event["object"]["currency"], "usd");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(&saved)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        record["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "x-test-run"),
        "{record}"
    );
    // A broken path is a usage error before anything is sent.
    let mut cmd = cli("whsec_fx");
    cmd.args([
        "send",
        &rx.url("/hook"),
        "--type",
        "plugipay.invoice.paid.v1",
        "--set",
        "data.object.id.x=1",
    ]);
    assert_eq!(run(cmd).status.code(), Some(2));
}

fn explain(secrets: &[&str], header: &str, body: &[u8]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("PLUGIPAY_WEBHOOK_SECRET");
    for s in secrets {
        cmd.args(["--secret", s]);
    }
    cmd.args(["verify", "--explain", "--header", header, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Err(e) = child.stdin.take().unwrap().write_all(body) {
        // verify may answer before reading everything; a closed pipe is fine.
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    let out = child.wait_with_output().expect("wait");
    let shown = text(&out.stdout);
    for s in secrets {
        assert!(!shown.contains(s), "a secret printed: {shown}");
    }
    shown
}

#[test]
fn verify_explain_names_the_usual_mistakes() {
    let secret = "whsec_explain";
    let now = plugipay_webhook::Verifier::new("x").now();
    let compact = br#"{"id":"evt_e","type":"t.v1","data":{"object":{"a":1}}}"#;
    let header = testing::sign_header(secret, now, compact);
    let mac = testing::sign(secret, now, compact);

    let mut newline = compact.to_vec();
    newline.push(b'\n');
    let out = explain(&[secret], &header, &newline);
    assert!(out.contains("trailing newline"), "{out}");
    assert!(!out.contains(&mac), "the MAC printed: {out}");

    // Pretty-printed in the same key order (a logger, a proxy's "beautify").
    let pretty = "{\n  \"id\": \"evt_e\",\n  \"type\": \"t.v1\",\n  \"data\": {\n    \"object\": {\n      \"a\": 1\n    }\n  }\n}";
    let out = explain(&[secret], &header, pretty.as_bytes());
    assert!(out.contains("pretty-printed"), "{out}");

    // Signed with sorted keys; received in another order.
    let sorted = br#"{"data":{"object":{"a":1}},"id":"evt_e","type":"t.v1"}"#;
    let sorted_header = testing::sign_header(secret, now, sorted);
    assert!(explain(&[secret], &sorted_header, compact).contains("keys reordered"));

    // The receiver holds the first secret; Plugipay signed with the second.
    let out = explain(&["whsec_receiver", secret], &header, compact);
    assert!(out.contains("secret #1 of 2, not the first"), "{out}");

    // Seconds signed, milliseconds in the header.
    let ms_header = header.replacen(&format!("t={now}"), &format!("t={}", now * 1000), 1);
    assert!(explain(&[secret], &ms_header, compact).contains("milliseconds"));

    // Signed over milliseconds: the signature matches, the age does not.
    let ms_signed = testing::sign_header(secret, now * 1000, compact);
    assert!(explain(&[secret], &ms_signed, compact).contains("looks like milliseconds"));
}

#[test]
fn completions_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run({
            let mut c = cli("x");
            c.args(["completions", shell]);
            c
        });
        assert_eq!(out.status.code(), Some(0));
        let script = text(&out.stdout);
        assert!(
            script.contains("plugipay-webhook") && script.contains("replay"),
            "{shell}"
        );
    }
    let out = run({
        let mut c = cli("x");
        c.arg("--version");
        c
    });
    assert_eq!(
        text(&out.stdout).trim(),
        format!("plugipay-webhook {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn listen_answers_like_a_failing_application_on_another_address() {
    let rx = listen(
        "whsec_st",
        &["--status", "418", "--delay", "50", "--host", "127.0.0.2"],
    );
    assert_eq!(rx.addr.ip().to_string(), "127.0.0.2");
    let mut cmd = cli("whsec_st");
    cmd.args([
        "send",
        &rx.url("/hook"),
        "--type",
        "plugipay.payout.paid.v1",
        "--json",
    ]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(line["status"], 418);
    assert_eq!(rx.lines()[0]["status"], 418);
    // --status must be a final status.
    let mut cmd = cli("whsec_st");
    cmd.args(["listen", "--port", "0", "--status", "100"]);
    assert_eq!(run(cmd).status.code(), Some(2));
}
