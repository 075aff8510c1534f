//! `listen`: a development receiver on the core's one adapter call — it
//! verifies and prints every delivery, and can save them byte-exact, forward
//! them to the application under development, or answer like a failing one.

use plugipay_webhook_dispatch::printable;
use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use plugipay_webhook::http::receive as verify_request;
use plugipay_webhook::{testing, Verifier, WebhookEvent};
use plugipay_webhook_axum::WebhookRejection;
use plugipay_webhook_console::dev::{Delivery, Verdict};
use plugipay_webhook_console::{Auth, Console};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox};
use plugipay_webhook_dispatch::Outcome;
use serde_json::json;

use crate::client::{Conn, Target, TlsArgs};
use crate::deliveries::{DeliveryLog, Replayer, TempDir};
use crate::secret::SecretArgs;
use crate::Failure;

/// Arguments of `listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Port (0 picks a free one; default: $PORT, else 3000).
    #[arg(long, short = 'p')]
    port: Option<u16>,

    /// Address to bind (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Tolerance in seconds.
    #[arg(long, default_value_t = 300)]
    tolerance: u64,

    /// One JSON line per delivery on stdout instead of pretty text.
    #[arg(long)]
    json: bool,

    /// Forward every verified delivery — the exact body bytes, signed afresh
    /// — to the application at this URL, and answer the sender with its status.
    #[arg(long, value_name = "URL")]
    forward_to: Option<String>,

    /// The secret to sign forwarded deliveries with (default: the secret(s)
    /// deliveries are verified with). Visible to other users in the process
    /// list: prefer PLUGIPAY_FORWARD_SECRET or --forward-secret-file.
    #[arg(
        long,
        value_name = "SECRET",
        env = "PLUGIPAY_FORWARD_SECRET",
        hide_env_values = true,
        requires = "forward_to",
        conflicts_with = "forward_secret_file"
    )]
    forward_secret: Option<Redacted>,

    /// Read the forward secret from this file (trailing newline ignored).
    #[arg(long, value_name = "FILE", requires = "forward_to")]
    forward_secret_file: Option<PathBuf>,

    #[command(flatten)]
    tls: TlsArgs,

    /// Save every delivery — valid or not — byte-exact into this directory,
    /// one JSON file each (base64 body and headers), named in arrival order,
    /// for `plugipay-webhook replay`.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,

    /// Answer every verified delivery with this status (to exercise a
    /// sender's retries).
    #[arg(long, value_name = "CODE", conflicts_with_all = ["fail_first", "forward_to"])]
    status: Option<u16>,

    /// Answer the first N deliveries of each event with 500, then 204.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "forward_to"
    )]
    fail_first: u32,

    /// Wait this long before answering a verified delivery.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay: u64,

    /// Also serve the web console at /console on the same port (a login
    /// URL with a fresh token is printed): every delivery, verified or not,
    /// with its verdict and the `verify --explain` diagnosis, a JSON diff of
    /// two, Replay (signed afresh, to --forward-to) and pin. Kept in a
    /// temporary SQLite database, removed when listen stops.
    #[arg(long)]
    ui: bool,
}

/// A secret from the command line: its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Redacted(String);

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_owned()))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("REDACTED")
    }
}

/// How many events `listen` remembers (whether one was seen, how often it
/// was answered): a long run sent millions keeps the newest this many.
const REMEMBERED: usize = 10_000;

/// A map that forgets its oldest keys past a bound: what `listen` keeps per
/// event stays bounded however many it is sent.
struct Recent<V> {
    map: HashMap<(String, String), V>,
    order: VecDeque<(String, String)>,
    cap: usize,
}

impl<V: Default> Recent<V> {
    fn new(cap: usize) -> Self {
        Recent {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// The value of `key` (a default one, remembered, when new) and whether
    /// it was new.
    fn entry(&mut self, key: (String, String)) -> (&mut V, bool) {
        let new = !self.map.contains_key(&key);
        if new {
            while self.order.len() >= self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(key.clone());
        }
        (self.map.entry(key).or_default(), new)
    }
}

impl<V: Default> Default for Recent<V> {
    fn default() -> Self {
        Recent::new(REMEMBERED)
    }
}

#[derive(Clone)]
struct Printer {
    json: bool,
    color: bool,
    seen: Arc<Mutex<Recent<()>>>,
}

/// What happened after verification, for the printed line.
#[derive(Default)]
struct After {
    answered: u16,
    forwarded: Option<Result<(u16, Duration), String>>,
    saved: Option<PathBuf>,
}

impl Printer {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn event(&self, event: &WebhookEvent, after: &After) {
        let key = (event.id().to_owned(), event.event_type().to_owned());
        let duplicate = self
            .seen
            .lock()
            .map(|mut s| !s.entry(key).1)
            .unwrap_or(false);
        let line = if self.json {
            json_line(&json!({
                "ok": true,
                "duplicate": duplicate,
                "id": event.id(),
                "type": event.event_type(),
                "account_id": event.account_id(),
                "occurred_at": event.occurred_at(),
                "matched_secret": event.matched_secret(),
                "object": event.object(),
                "status": after.answered,
                "forward": after.forwarded.as_ref().map(|f| match f {
                    Ok((status, latency)) => json!({"status": status, "latency_ms": crate::send::ms(*latency)}),
                    Err(e) => json!({"error": e}),
                }),
                "saved": after.saved,
            }))
        } else {
            let object = serde_json::to_string_pretty(event.object()).unwrap_or_default();
            let mut text = format!(
                "{} {} {}{}\n  account {}  occurred {}  secret #{}\n{}",
                self.paint("32;1", "✔ verified"),
                self.paint("1", &printable(event.event_type())),
                printable(event.id()),
                if duplicate {
                    self.paint("33", "  (duplicate delivery)")
                } else {
                    String::new()
                },
                printable(event.account_id().unwrap_or("-")),
                printable(event.occurred_at().unwrap_or("-")),
                event.matched_secret(),
                object
                    .lines()
                    .map(|l| format!("  {}", printable(l)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            match &after.forwarded {
                Some(Ok((status, latency))) => text.push_str(&format!(
                    "\n  → forwarded: {status} in {:.1} ms",
                    crate::send::ms(*latency)
                )),
                Some(Err(e)) => text.push_str(&format!("\n  → forward failed: {}", printable(e))),
                None => {}
            }
            if let Some(path) = &after.saved {
                text.push_str(&format!("\n  saved {}", path.display()));
            }
            text.push_str(&format!("\n  answered {}", after.answered));
            text
        };
        say(&line);
    }

    fn rejection(&self, r: &WebhookRejection, saved: Option<&PathBuf>) {
        let line = if self.json {
            json_line(
                &json!({"ok": false, "status": r.status().as_u16(), "error": r.code(), "message": r.to_string(), "saved": saved}),
            )
        } else {
            let mut text = format!(
                "{} {} {}",
                self.paint("31;1", "✘ rejected"),
                r.status().as_u16(),
                printable(&r.to_string())
            );
            if let Some(path) = saved {
                text.push_str(&format!("\n  saved {}", path.display()));
            }
            text
        };
        say(&line);
    }
}

/// A JSON line with every character that could steer a terminal escaped as
/// `\uXXXX`; still the same JSON.
fn json_line(value: &serde_json::Value) -> String {
    plugipay_webhook_dispatch::printable_json(&value.to_string()).into_owned()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Saves deliveries byte-exact, one JSON file each, in arrival order.
struct Saver {
    dir: PathBuf,
    next: AtomicU64,
}

impl Saver {
    /// Creates the directory (owner only: captures hold every header —
    /// `Authorization` too — and the body) and continues its numbering.
    fn open(dir: &Path) -> Result<Saver, Failure> {
        let existed = dir.exists();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", dir.display())))?;
        #[cfg(unix)]
        if existed {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: {} can be read by other users ({:o}); captures hold request headers and bodies",
                    dir.display(),
                    mode & 0o777
                );
            }
        }
        // Continue the numbering of an existing capture.
        let next = std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).count() as u64)
            .unwrap_or(0);
        Ok(Saver {
            dir: dir.to_owned(),
            next: AtomicU64::new(next),
        })
    }

    /// Saves one delivery and what `listen` made of it (`verified`, or the
    /// error code): a new file, readable by its owner only.
    fn save(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        verdict: &str,
    ) -> Result<PathBuf, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let received_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let record = json!({
            "received_at_ms": received_ms,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "headers": parts.headers.iter().map(|(name, value)| json!({
                "name": name.as_str(),
                "value_b64": b64.encode(value.as_bytes()),
            })).collect::<Vec<_>>(),
            "body_b64": b64.encode(body),
            "verdict": verdict,
        });
        let path = self.dir.join(format!("{n:06}-{received_ms}.json"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .map_err(|e| format!("cannot save {}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, format!("{record:#}\n").as_bytes())
            .map_err(|e| format!("cannot save {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// Forwards verified deliveries to the application, signed afresh.
struct Forwarder {
    target: Target,
    secrets: Vec<String>,
    idle: Mutex<Vec<Conn>>,
}

impl Forwarder {
    async fn forward(&self, body: Bytes) -> Result<(StatusCode, Bytes, Duration), String> {
        let refs: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let signature = testing::sign_header_multi(&refs, crate::time::now(), &body);
        let conn = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = conn.unwrap_or_else(|| Conn::new(self.target.clone()));
        let start = Instant::now();
        let headers = [(plugipay_webhook::SIGNATURE_HEADER.to_owned(), signature)];
        let result = conn.post(body, &headers, Duration::from_secs(30)).await;
        let latency = start.elapsed();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result.map(|(status, body)| (status, body, latency))
    }
}

/// How to answer a verified delivery without forwarding it.
struct Answer {
    status: Option<u16>,
    fail_first: u32,
    delay: Duration,
    attempts: Mutex<Recent<u32>>,
}

struct App {
    verifier: Verifier,
    printer: Printer,
    saver: Option<Saver>,
    forwarder: Option<Arc<Forwarder>>,
    answer: Answer,
    ui: Option<Ui>,
}

/// `--ui`: the record of every delivery, and the inbox of the verified ones.
struct Ui {
    log: DeliveryLog,
    inbox: Inbox,
    secrets: Vec<String>,
}

impl Ui {
    /// Records a delivery: its verdict, the `verify --explain` diagnosis of
    /// a signature problem (or of a match with a later secret), and what
    /// it was answered; a verified one also goes into the inbox.
    async fn record(
        &self,
        verifier: &Verifier,
        parts: &axum::http::request::Parts,
        body: Vec<u8>,
        result: Result<&WebhookEvent, &WebhookRejection>,
        after: &After,
    ) {
        let header = parts
            .headers
            .get(plugipay_webhook::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        let received_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (verdict, signature_problem) = match result {
            Ok(event) => (
                Verdict::Verified {
                    id: event.id().to_owned(),
                    event_type: event.event_type().to_owned(),
                    tenant: event.tenant().map(str::to_owned),
                    matched_secret: event.matched_secret(),
                },
                event.matched_secret() > 0,
            ),
            Err(r) => (
                Verdict::Rejected {
                    status: r.status().as_u16(),
                    code: r.code().to_owned(),
                    message: r.to_string(),
                },
                r.code().starts_with("signature_"),
            ),
        };
        let explain = match header {
            Some(header) if signature_problem => {
                // The receiver's own verifier: its --tolerance, its secrets.
                let again =
                    verifier.verify_at(body.as_slice(), Some(header), received_at_ms / 1000);
                crate::verify::explain(&self.secrets, header, &body, &again)
            }
            _ => Vec::new(),
        };
        if let Ok(event) = result {
            if self.inbox.receive(event).await == Outcome::StoreUnavailable {
                eprintln!(
                    "error: the console's inbox did not store {}",
                    printable(event.id())
                );
            }
        }
        let delivery = Delivery {
            seq: 0,
            received_at_ms,
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: Bytes::from(body),
            verdict,
            explain,
            answered: Some(after.answered),
            forwarded: after.forwarded.as_ref().map(|f| match f {
                Ok((status, latency)) => format!("{status} in {:.1} ms", crate::send::ms(*latency)),
                Err(e) => format!("failed: {e}"),
            }),
            pinned: false,
            replays: 0,
            last_replay: None,
        };
        if let Err(e) = self.log.record(delivery).await {
            eprintln!("error: {e}");
        }
    }
}

/// A body stream that keeps a copy of every chunk (for `--save`).
struct Tee {
    inner: axum::body::BodyDataStream,
    copy: Option<Arc<Mutex<Vec<u8>>>>,
}

impl futures_core::Stream for Tee {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        if let (Poll::Ready(Some(Ok(chunk))), Some(copy)) = (&polled, &self.copy) {
            if let Ok(mut copy) = copy.lock() {
                copy.extend_from_slice(chunk);
            }
        }
        polled
    }
}

async fn receive(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let copy = (app.saver.is_some() || app.ui.is_some()).then(|| Arc::new(Mutex::new(Vec::new())));
    let body = Tee {
        inner: body.into_data_stream(),
        copy: copy.clone(),
    };
    let result = verify_request(Some(&app.verifier), &parts, body).await;
    let bytes = copy
        .as_ref()
        .and_then(|c| c.lock().ok().map(|c| c.clone()))
        .unwrap_or_default();
    let saved = match &app.saver {
        Some(saver) => {
            let verdict = match &result {
                Ok(_) => "verified",
                Err(rejection) => rejection.code(),
            };
            match saver.save(&parts, &bytes, verdict) {
                Ok(path) => Some(path),
                Err(e) => {
                    eprintln!("error: {e}");
                    None
                }
            }
        }
        _ => None,
    };
    let event = match result {
        Ok(event) => event,
        Err(rejection) => {
            let rejection = WebhookRejection(rejection);
            app.printer.rejection(&rejection, saved.as_ref());
            if let Some(ui) = &app.ui {
                let after = After {
                    answered: rejection.status().as_u16(),
                    ..After::default()
                };
                ui.record(&app.verifier, &parts, bytes, Err(&rejection), &after)
                    .await;
            }
            return rejection.into_response();
        }
    };
    let answer = &app.answer;
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut after = After {
        saved,
        ..After::default()
    };
    let response = if let Some(forwarder) = &app.forwarder {
        match forwarder.forward(event.raw_body().clone()).await {
            Ok((status, body, latency)) => {
                after.forwarded = Some(Ok((status.as_u16(), latency)));
                after.answered = status.as_u16();
                (status, body).into_response()
            }
            Err(e) => {
                after.forwarded = Some(Err(e));
                after.answered = 502;
                (
                    StatusCode::BAD_GATEWAY,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"forward_failed"}"#,
                )
                    .into_response()
            }
        }
    } else {
        let key = (event.id().to_owned(), event.event_type().to_owned());
        let attempt = answer
            .attempts
            .lock()
            .map(|mut a| {
                let n = a.entry(key).0;
                *n += 1;
                *n
            })
            .unwrap_or(1);
        let status = match answer.status {
            Some(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            None if attempt <= answer.fail_first => StatusCode::INTERNAL_SERVER_ERROR,
            None => StatusCode::NO_CONTENT,
        };
        after.answered = status.as_u16();
        Response::builder()
            .status(status)
            .body(Body::empty())
            .expect("a valid response")
    };
    app.printer.event(&event, &after);
    if let Some(ui) = &app.ui {
        ui.record(&app.verifier, &parts, bytes, Ok(&event), &after)
            .await;
    }
    response
}

pub(crate) fn run(secret: &SecretArgs, args: ListenArgs) -> Result<u8, Failure> {
    let secrets = secret.secrets()?;
    let verifier = Verifier::from_secrets(&secrets).tolerance(Duration::from_secs(args.tolerance));
    let port = match args.port {
        Some(p) => p,
        None => match std::env::var("PORT") {
            Ok(p) => p
                .trim()
                .parse()
                .map_err(|_| Failure::config(format!("PORT must be a port number, got {p:?}")))?,
            Err(_) => 3000,
        },
    };
    if let Some(code) = args.status {
        StatusCode::from_u16(code)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| Failure::usage(format!("--status {code} is not a final HTTP status")))?;
    }
    let saver = args.save.as_deref().map(Saver::open).transpose()?;
    let forward_secret = match (&args.forward_secret, &args.forward_secret_file) {
        (Some(Redacted(s)), _) => Some(s.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::config(format!(
                    "cannot read forward secret file {}: {e}",
                    path.display()
                ))
            })?;
            let secret = text.trim_end_matches(['\n', '\r']).to_owned();
            if secret.is_empty() {
                return Err(Failure::config(format!(
                    "{} holds no secret",
                    path.display()
                )));
            }
            Some(secret)
        }
        (None, None) => None,
    };
    let forwarder = match &args.forward_to {
        Some(url) => Some(Arc::new(Forwarder {
            target: Target::parse(url, &args.tls)?,
            secrets: forward_secret.map_or_else(|| secrets.clone(), |s| vec![s]),
            idle: Mutex::new(Vec::new()),
        })),
        None => None,
    };
    let printer = Printer {
        json: args.json,
        color: !args.json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        seen: Arc::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(format!("cannot start the runtime: {e}")))?;
    let host = args.host;
    rt.block_on(async move {
        // `--ui`: this run's own directory, removed when it ends.
        let (dir, ui, console) = if args.ui {
            let (dir, ui, console) = ui(&verifier, &secrets, forwarder.as_ref(), &args).await?;
            (Some(dir), Some(ui), Some(console))
        } else {
            (None, None, None)
        };
        let app = Arc::new(App {
            verifier,
            printer,
            saver,
            forwarder,
            answer: Answer {
                status: args.status,
                fail_first: args.fail_first,
                delay: Duration::from_millis(args.delay),
                attempts: Mutex::default(),
            },
            ui,
        });
        let mut router = Router::new();
        if let Some((console, _)) = &console {
            router = router.merge(console.router());
        }
        let router = router
            .route("/", post(receive))
            .route("/{*path}", post(receive))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| Failure::io(format!("cannot listen on {host}:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::io(e.to_string()))?;
        let forwarding = args
            .forward_to
            .as_deref()
            .map(|u| format!("; forwarding to {u}"))
            .unwrap_or_default();
        let console_note = if console.is_some() {
            "; the console under /console"
        } else {
            ""
        };
        say(&format!(
            "listening on http://{addr}  (POST any path{forwarding}{console_note}; Ctrl-C to stop)"
        ));
        if let (Some((_, token)), Some(dir)) = (&console, &dir) {
            // An address a browser can open, even when bound to every interface.
            let shown = if addr.ip().is_unspecified() {
                std::net::SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port())
            } else {
                addr
            };
            say(&format!(
                "console on http://{shown}/console/login?token={token}"
            ));
            say(&format!(
                "deliveries kept in {} until listen stops",
                dir.path().display()
            ));
        }
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| Failure::io(e.to_string()))?;
        drop(dir);
        Ok(0)
    })
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // SIGHUP too: the terminal closed — the run ends and removes its
        // directory as on Ctrl-C.
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `--ui`: a temporary directory holding a SQLite inbox (the verified
/// events) and the record of every delivery, and the console over both,
/// behind a fresh bearer token.
async fn ui(
    verifier: &Verifier,
    secrets: &[String],
    forwarder: Option<&Arc<Forwarder>>,
    args: &ListenArgs,
) -> Result<(TempDir, Ui, (Console, String)), Failure> {
    // Runs killed before they could remove their directory leave it: the
    // next start does.
    let swept = TempDir::sweep("plugipay-listen");
    if swept > 0 {
        eprintln!("removed {swept} director(ies) of earlier listen --ui runs that were killed");
    }
    let dir = TempDir::new("plugipay-listen")
        .map_err(|e| Failure::io(format!("cannot make a directory for --ui: {e}")))?;
    let db = dir.path().join("listen.sqlite3");
    let backend = SqliteInbox::open(&db)
        .await
        .map_err(|e| Failure::io(format!("cannot open the console's inbox: {e}")))?;
    let inbox = Inbox::builder(backend)
        .build()
        .map_err(|e| Failure::config(e.to_string()))?;
    let replay: Option<(String, Replayer)> = match (forwarder, &args.forward_to) {
        (Some(forwarder), Some(url)) => {
            let forwarder = forwarder.clone();
            let send: Replayer = Arc::new(move |body: Bytes| {
                let forwarder = forwarder.clone();
                Box::pin(async move {
                    let (status, _, latency) = forwarder.forward(body).await?;
                    Ok(format!(
                        "{} in {:.1} ms",
                        status.as_u16(),
                        crate::send::ms(latency)
                    ))
                })
            });
            Some((url.clone(), send))
        }
        _ => None,
    };
    let log = DeliveryLog::open(&db, replay)
        .await
        .map_err(|e| Failure::io(format!("cannot open the console's delivery log: {e}")))?;
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)
        .map_err(|e| Failure::io(format!("no randomness for a token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Served over plain HTTP: the cookie cannot be `Secure`.
    let console = Console::builder(inbox.clone(), Auth::bearer(token.clone()))
        .secure_cookie(false)
        .verifier(verifier.clone())
        .retries(false)
        .deliveries(log.clone())
        .build()
        .map_err(|e| Failure::config(e.to_string()))?;
    let ui = Ui {
        log,
        inbox,
        secrets: secrets.to_vec(),
    };
    Ok((dir, ui, (console, token)))
}

#[cfg(test)]
mod tests {
    /// Past its bound the oldest events are forgotten: a key seen long ago
    /// is new again, the newest are remembered.
    #[test]
    fn recent_forgets_the_oldest_past_its_bound() {
        let mut r: super::Recent<u32> = super::Recent::new(3);
        let k = |i: u32| (format!("evt_{i}"), "t".to_owned());
        for i in 0..5 {
            *r.entry(k(i)).0 += 1;
        }
        assert_eq!(r.map.len(), 3);
        assert!(r.entry(k(0)).1, "the oldest was forgotten");
        let (n, new) = r.entry(k(4));
        assert!(!new);
        assert_eq!(*n, 1, "a remembered one keeps its count");
    }

    use clap::Parser;

    #[test]
    fn debug_of_listen_arguments_never_shows_the_forward_secret() {
        let cli = crate::Cli::try_parse_from([
            "plugipay-webhook",
            "listen",
            "--forward-to",
            "http://127.0.0.1:9/app",
            "--forward-secret",
            "whsec_do_not_print",
        ])
        .expect("parses");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("whsec_do_not_print"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
