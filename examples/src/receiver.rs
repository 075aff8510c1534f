//! What every example receiver does with a verified event, whatever the
//! framework: the seed's Flask example, done properly.

use std::io::Write;
use std::time::Duration;

use plugipay_webhook::http::{Tenant, Verifiers};
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_console::Auth as ConsoleAuth;
pub use plugipay_webhook_console::Console;
use plugipay_webhook_dispatch::inbox::{
    current_attempt, inbox_from_url, Inbox, OrderKey, Processed, ProcessedEvent, SqlValue, Workers,
    DEFAULT_HANDLER,
};
use plugipay_webhook_dispatch::{store_from_url, Dispatcher, Outcome};

/// Where the example receivers mount the inbox's console
/// (`PLUGIPAY_CONSOLE_TOKEN`).
pub const CONSOLE_ROUTE: &str = "/console";

/// The route every example serves.
pub const WEBHOOK_ROUTE: &str = "/webhooks/plugipay";

/// The per-tenant route every example also serves (axum's and actix-web's
/// spelling; `{tenant}` is the tenant's name in `PLUGIPAY_TENANT_SECRETS`).
pub const TENANT_ROUTE: &str = "/tenants/{tenant}/webhooks/plugipay";

/// A baseline route every example also serves, for load comparisons: it reads
/// the body with the framework's own extractor and answers 204, verifying
/// nothing. Never expose such a route in a real receiver.
pub const PLAIN_ROUTE: &str = "/plain";

/// Start-up configuration from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// From `PLUGIPAY_WEBHOOK_SECRET` (comma-separated during a rotation).
    pub verifier: Verifier,
    /// From `HOST`, default `127.0.0.1` (`0.0.0.0` in a container).
    pub host: std::net::IpAddr,
    /// From `PORT`, default 3000.
    pub port: u16,
    /// Per-tenant verifiers for [`TENANT_ROUTE`], from
    /// `PLUGIPAY_TENANT_SECRETS` (`acme=whsec_a,whsec_a_old;globex=whsec_b`);
    /// without it every tenant is unknown (`404 endpoint_unknown`).
    pub tenants: Verifiers,
}

fn exit_with(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}

impl Config {
    /// Reads the environment, or prints why it cannot and exits with status 2.
    #[must_use]
    pub fn from_env_or_exit() -> Config {
        Config::from_env().unwrap_or_else(|msg| exit_with(&msg))
    }

    /// Reads `PLUGIPAY_WEBHOOK_SECRET` (or `PLUGIPAY_WEBHOOK_SECRET_FILE`),
    /// `PLUGIPAY_TENANT_SECRETS`, `HOST` and `PORT`.
    pub fn from_env() -> Result<Config, String> {
        let verifier = Verifier::from_env().map_err(|e| e.to_string())?;
        let tenant_secrets = std::env::var("PLUGIPAY_TENANT_SECRETS").unwrap_or_default();
        let tenants = Verifiers::by_tenant(
            Tenant::in_path(TENANT_ROUTE),
            Verifiers::parse_tenant_secrets(&tenant_secrets)
                .map_err(|e| format!("PLUGIPAY_TENANT_SECRETS: {e}"))?,
        );
        let port = match std::env::var("PORT") {
            Ok(p) => p
                .trim()
                .parse()
                .map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
            Err(_) => 3000,
        };
        let host = match std::env::var("HOST") {
            Ok(h) => h
                .trim()
                .parse()
                .map_err(|_| format!("HOST must be an IP address, got {h:?}"))?,
            Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
        };
        Ok(Config {
            verifier,
            host,
            port,
            tenants,
        })
    }

    /// `<host>:<port>`.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }

    /// Binds `<host>:<port>` and prints `listening on http://<addr>`, or
    /// prints why not and exits with status 1.
    pub async fn listen_or_exit(&self) -> tokio::net::TcpListener {
        let listener = match tokio::net::TcpListener::bind(self.addr()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", self.addr());
                std::process::exit(1);
            }
        };
        match listener.local_addr() {
            Ok(addr) => say(&format!("listening on http://{addr}")),
            Err(e) => eprintln!("error: {e}"),
        }
        listener
    }
}

/// The health route every example serves: `GET /healthz` answers `200
/// {"status":"ok"}` when the de-duplication store answers, `503
/// {"status":"store_unavailable"}` otherwise.
pub const HEALTH_ROUTE: &str = "/healthz";

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the examples then stop accepting
/// connections, let in-flight deliveries finish — their handlers run to the
/// end and their events are marked done or their claims released — and exit.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    eprintln!("shutting down: finishing in-flight deliveries");
}

/// The metrics route every example serves: `GET /metrics`, the `metrics`
/// facade's counters, histograms and gauges in Prometheus text format.
pub const METRICS_ROUTE: &str = "/metrics";

static PROMETHEUS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Installs the Prometheus recorder (once per process).
pub fn init_metrics() {
    PROMETHEUS.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| eprintln!("error: no metrics: {e}"))
            .ok()
    });
}

/// `GET /metrics`: the body, in Prometheus text format.
#[must_use]
pub fn render_metrics() -> String {
    PROMETHEUS
        .get()
        .and_then(Option::as_ref)
        .map(metrics_exporter_prometheus::PrometheusHandle::render)
        .unwrap_or_default()
}

/// The `Content-Type` of `GET /metrics`.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Logs to stderr (`RUST_LOG`, default `info`), leaving stdout to the
/// `handled …` / `duplicate …` lines.
pub fn init_tracing() {
    init_metrics();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The handler table behind a de-duplicating [`Dispatcher`].
///
/// Environment:
/// - `PLUGIPAY_DEDUP_URL`: `memory:` (default), `sqlite://PATH`,
///   `postgres://…` or `redis://…` — a shared store makes several replicas
///   handle each event once;
/// - `PLUGIPAY_DEDUP_LEASE_MS`: the claim's lease (default 60000; handlers
///   time out at half of it);
/// - `PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS`: make every handler take this long
///   (to watch concurrent redeliveries get 409, or to kill a receiver
///   mid-handler);
/// - `PLUGIPAY_EXAMPLE_QUIET=1`: no `handled`/`duplicate` lines (load runs,
///   where a write to stdout per request would be what is measured).
///
/// With `PLUGIPAY_INBOX_URL` (`postgres://…`, `sqlite://PATH`, `redis://…`) the receiver
/// is in inbox mode instead: every verified delivery is stored and answered
/// `202` before any handler runs, and in-process workers process it:
/// - `PLUGIPAY_INBOX_WORKERS` (default 4), `PLUGIPAY_INBOX_LEASE_MS` (60000),
///   `PLUGIPAY_INBOX_CONNECTIONS` (PostgreSQL: the receive path's
///   connections, default `DEFAULT_POSTGRES_CONNECTIONS`),
///   `PLUGIPAY_INBOX_MAX_ATTEMPTS` (10), `PLUGIPAY_INBOX_RETRY_BASE_MS`
///   (first backoff, 1000);
/// - `PLUGIPAY_INBOX_ORDERED=1`: events about one object
///   (`OrderKey::object()`) run one at a time, in `occurred_at` order
///   (SQL inboxes); `PLUGIPAY_INBOX_REORDER_WINDOW_MS` (0) delays each new
///   event that long, to sort a burst first;
/// - `plugipay.invoice.paid.v1` has two handlers: `ledger` (below) and
///   `notify`, which prints `notified <id>` when it succeeds; every other
///   type one (`default`);
/// - `PLUGIPAY_EXAMPLE_FAIL_FIRST=N`: every handler fails the first N
///   attempts of each event; `PLUGIPAY_EXAMPLE_FAIL_HANDLER=NAME:N`: the
///   handler `NAME` does;
/// - `PLUGIPAY_EXAMPLE_ABORT_ON=ID`: the handler aborts the whole process
///   when it runs event `ID` (a poison event, for the tests);
/// - stdout: `handled <id> <type>` once "done" is committed (every handler
///   of the event done), `dead <id> <type> <handler>` when a handler of it
///   goes dead, `stale <id> <type>` when an ordered
///   event comes up older than its object's newest done one — each with a
///   last field `tenant=<name>` for deliveries on the tenant route;
/// - on a SQL inbox every handler but `notify` inserts, inside the inbox's transaction,
///   one row into `example_applied (object_id, event_id, occurred_at,
///   started_ms, finished_ms)` — when it began, and just before the insert
///   (after the delay); the `plugipay.invoice.paid.v1` handler also one row
///   `(event_id, amount)` — `data.object.total` — into `example_ledger`
///   (both created if missing, no unique constraint). Redis has no
///   transaction to share: there the handlers only print.
#[derive(Debug, Clone)]
pub struct Receiver {
    mode: Mode,
    quiet: bool,
}

#[derive(Debug, Clone)]
enum Mode {
    Dispatch(Dispatcher),
    Inbox {
        inbox: Inbox,
        workers: std::sync::Arc<std::sync::Mutex<Option<Workers>>>,
    },
}

/// A handler of the example's event catalog.
type CatalogHandler = fn(&WebhookEvent);

/// The example's event catalog.
const CATALOG: [(&str, CatalogHandler); 6] = [
    ("plugipay.customer.created.v1", customer_created),
    ("plugipay.invoice.paid.v1", invoice_paid),
    ("plugipay.checkout_session.succeeded.v1", checkout_succeeded),
    ("plugipay.subscription.cancelled.v1", subscription_cancelled),
    ("plugipay.refund.succeeded.v1", refund_succeeded),
    ("plugipay.payout.paid.v1", payout_paid),
];

fn env_ms(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be milliseconds, got {v:?}")),
        Err(_) => Ok(default),
    }
}

impl Receiver {
    /// Builds the receiver from the environment, or prints why not and exits 2.
    pub async fn from_env_or_exit() -> Receiver {
        match Receiver::from_env().await {
            Ok(r) => r,
            Err(msg) => exit_with(&msg),
        }
    }

    /// Builds the receiver from the environment.
    pub async fn from_env() -> Result<Receiver, String> {
        let quiet = std::env::var("PLUGIPAY_EXAMPLE_QUIET").is_ok_and(|v| v == "1");
        // The metrics' tenant labels: the configured tenants (others are
        // counted as `other`).
        let tenants: Vec<String> = Verifiers::parse_tenant_secrets(
            &std::env::var("PLUGIPAY_TENANT_SECRETS").unwrap_or_default(),
        )
        .map(|t| t.into_keys().collect())
        .unwrap_or_default();
        if let Ok(url) = std::env::var("PLUGIPAY_INBOX_URL") {
            return Receiver::inbox_from_env(&url, quiet, tenants).await;
        }
        let url = std::env::var("PLUGIPAY_DEDUP_URL").unwrap_or_else(|_| "memory:".into());
        let lease = Duration::from_millis(env_ms("PLUGIPAY_DEDUP_LEASE_MS", 60_000)?.max(2));
        let delay = Duration::from_millis(env_ms("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", 0)?);
        let store = store_from_url(&url).await.map_err(|e| e.to_string())?;
        let mut builder = Dispatcher::builder_shared(store)
            .lease(lease)
            .handler_timeout(lease / 2)
            .tenants(tenants);
        for (event_type, handler) in CATALOG {
            builder = builder.on(event_type, move |event: WebhookEvent| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                handler(&event);
                Ok::<_, std::convert::Infallible>(())
            });
        }
        let dispatcher = builder.build().map_err(|e| e.to_string())?;
        Ok(Receiver {
            mode: Mode::Dispatch(dispatcher),
            quiet,
        })
    }

    /// Inbox mode: store, acknowledge, process on workers.
    async fn inbox_from_env(
        url: &str,
        quiet: bool,
        tenants: Vec<String>,
    ) -> Result<Receiver, String> {
        let workers = env_ms("PLUGIPAY_INBOX_WORKERS", 4)?;
        let lease = Duration::from_millis(env_ms("PLUGIPAY_INBOX_LEASE_MS", 60_000)?.max(2));
        let max_attempts = env_ms("PLUGIPAY_INBOX_MAX_ATTEMPTS", 10)?;
        let retry_base = Duration::from_millis(env_ms("PLUGIPAY_INBOX_RETRY_BASE_MS", 1000)?);
        let delay = Duration::from_millis(env_ms("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", 0)?);
        let fail_first =
            u32::try_from(env_ms("PLUGIPAY_EXAMPLE_FAIL_FIRST", 0)?).unwrap_or(u32::MAX);
        let fail_handler: Option<(String, u32)> =
            match std::env::var("PLUGIPAY_EXAMPLE_FAIL_HANDLER") {
                Ok(v) if !v.is_empty() => {
                    let parsed = v
                        .split_once(':')
                        .and_then(|(name, n)| Some((name.to_owned(), n.trim().parse().ok()?)));
                    Some(parsed.ok_or_else(|| {
                        format!("PLUGIPAY_EXAMPLE_FAIL_HANDLER must be NAME:N, not {v:?}")
                    })?)
                }
                _ => None,
            };
        let abort_on: Option<std::sync::Arc<str>> = std::env::var("PLUGIPAY_EXAMPLE_ABORT_ON")
            .ok()
            .filter(|v| !v.is_empty())
            .map(Into::into);
        let connections = match std::env::var("PLUGIPAY_INBOX_CONNECTIONS") {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| {
                format!("PLUGIPAY_INBOX_CONNECTIONS must be a number of connections, got {v:?}")
            })?,
            Err(_) => 0,
        };
        let backend = if connections > 0 && url.starts_with("postgres") {
            plugipay_webhook_dispatch::inbox::PostgresInbox::builder(url)
                .connections(connections as usize)
                .connect()
                .await
                .map_err(|e| e.to_string())?
                .into()
        } else {
            inbox_from_url(url).await.map_err(|e| e.to_string())?
        };
        let transactional = backend.is_transactional();
        // Every handler: the delay, then abort on the poison event, then
        // fail the first N attempts.
        let fails = std::sync::Arc::new(
            move |event: &WebhookEvent, name: &str| -> Result<(), std::io::Error> {
                if abort_on.as_deref() == Some(event.id()) {
                    eprintln!("PLUGIPAY_EXAMPLE_ABORT_ON: aborting on {}", event.id());
                    std::process::abort();
                }
                let attempt = current_attempt().unwrap_or(1);
                if attempt <= fail_first {
                    return Err(std::io::Error::other(format!(
                        "PLUGIPAY_EXAMPLE_FAIL_FIRST={fail_first}"
                    )));
                }
                if let Some((only, n)) = &fail_handler {
                    if only == name && attempt <= *n {
                        return Err(std::io::Error::other(format!(
                            "PLUGIPAY_EXAMPLE_FAIL_HANDLER={only}:{n}"
                        )));
                    }
                }
                Ok(())
            },
        );
        // The handler timeout is the inbox's default: half the lease (on
        // SQLite, a transactional handler's is half the store timeout).
        let mut builder = Inbox::builder(backend)
            .lease(lease)
            .tenants(tenants)
            .max_attempts(u32::try_from(max_attempts).unwrap_or(u32::MAX))
            .retry_backoff(
                retry_base,
                retry_base.saturating_mul(64).max(Duration::from_secs(60)),
            )
            .on_processed(move |p: &ProcessedEvent<'_>| {
                if quiet {
                    return;
                }
                let (id, event_type) = (p.id, p.event_type);
                match p.processed {
                    Processed::Done => {
                        say(&with_tenant(format!("handled {id} {event_type}"), p.tenant))
                    }
                    Processed::Stale => {
                        say(&with_tenant(format!("stale {id} {event_type}"), p.tenant))
                    }
                    _ => {}
                }
            });
        builder = builder.on_dead(move |dead| async move {
            if !quiet {
                let (id, ty, handler) = (&dead.id, &dead.event_type, &dead.handler);
                let tenant = (!dead.tenant.is_empty()).then_some(dead.tenant.as_str());
                say(&with_tenant(format!("dead {id} {ty} {handler}"), tenant));
            }
        });
        if std::env::var("PLUGIPAY_INBOX_ORDERED").is_ok_and(|v| v == "1") {
            builder = builder
                .order_by(OrderKey::object())
                .reorder_window(Duration::from_millis(env_ms(
                    "PLUGIPAY_INBOX_REORDER_WINDOW_MS",
                    0,
                )?));
        }
        for (event_type, handler) in CATALOG {
            let fails = fails.clone();
            let paid = event_type == "plugipay.invoice.paid.v1";
            let name = if paid { "ledger" } else { DEFAULT_HANDLER };
            // `notify` is registered first: the handlers run in
            // registration order, and when the last one to run is
            // transactional its commit also settles the event — one commit
            // per event, as with `ledger` alone.
            if paid {
                let fails = fails.clone();
                builder = builder.on((event_type, "notify"), move |event: WebhookEvent| {
                    let fails = fails.clone();
                    async move {
                        fails(&event, "notify")?;
                        if !quiet {
                            say(&with_tenant(
                                format!("notified {}", event.id()),
                                event.tenant(),
                            ));
                        }
                        Ok::<_, std::io::Error>(())
                    }
                });
            }
            if transactional {
                // On a SQL inbox every handler records what it applied, in
                // the inbox's transaction: `example_applied` (and the
                // invoice's ledger row).
                builder = builder.on_tx((event_type, name), move |tx, event| {
                    let fails = fails.clone();
                    Box::pin(async move {
                        let started_ms = unix_ms();
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        if event_type == "plugipay.invoice.paid.v1" {
                            let total = event.object()["total"].as_i64().unwrap_or(0);
                            tx.execute(
                                "INSERT INTO example_ledger (event_id, amount) VALUES ($1, $2)",
                                &[SqlValue::from(event.id()), SqlValue::from(total)],
                            )
                            .await?;
                        }
                        let text = |v: Option<&str>| v.map_or(SqlValue::Null, SqlValue::from);
                        tx.execute(
                            "INSERT INTO example_applied \
                             (object_id, event_id, occurred_at, started_ms, finished_ms) \
                             VALUES ($1, $2, $3, $4, $5)",
                            &[
                                text(event.object()["id"].as_str()),
                                SqlValue::from(event.id()),
                                text(event.occurred_at()),
                                SqlValue::from(started_ms),
                                SqlValue::from(unix_ms()),
                            ],
                        )
                        .await?;
                        fails(&event, name)?;
                        handler(&event);
                        Ok(())
                    })
                });
            } else {
                builder = builder.on((event_type, name), move |event: WebhookEvent| {
                    let fails = fails.clone();
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        fails(&event, name)?;
                        handler(&event);
                        Ok::<_, std::io::Error>(())
                    }
                });
            }
        }
        let inbox = builder.build().map_err(|e| e.to_string())?;
        if transactional {
            inbox
                .execute(
                    "CREATE TABLE IF NOT EXISTS example_ledger (event_id TEXT, amount BIGINT);
                     CREATE TABLE IF NOT EXISTS example_applied (object_id TEXT, event_id TEXT,
                        occurred_at TEXT, started_ms BIGINT, finished_ms BIGINT)",
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        let running = inbox.start_workers(usize::try_from(workers).unwrap_or(4));
        Ok(Receiver {
            mode: Mode::Inbox {
                inbox,
                workers: std::sync::Arc::new(std::sync::Mutex::new(Some(running))),
            },
            quiet,
        })
    }

    /// The inbox's web console, mounted at [`CONSOLE_ROUTE`] when
    /// `PLUGIPAY_CONSOLE_TOKEN` is set (bearer token, or
    /// `GET /console/login?token=…` for a browser): `None` without it. It
    /// re-verifies stored events with `config`'s secrets and
    /// `PLUGIPAY_TENANT_SECRETS`. Exits 2 when the token is set but the
    /// receiver has no inbox (`PLUGIPAY_INBOX_URL`), or holds under 128
    /// bits of entropy (32 random hex digits, 22 random letters and digits).
    #[must_use]
    pub fn console_or_exit(&self, config: &Config) -> Option<Console> {
        let token = std::env::var("PLUGIPAY_CONSOLE_TOKEN").ok()?;
        let Mode::Inbox { inbox, .. } = &self.mode else {
            exit_with("PLUGIPAY_CONSOLE_TOKEN: the console shows an inbox: set PLUGIPAY_INBOX_URL");
        };
        let mut builder = Console::builder(inbox.clone(), ConsoleAuth::bearer(token))
            .base(CONSOLE_ROUTE)
            // The example receivers speak plain HTTP: a `Secure` cookie
            // would not come back from a browser on another host. Behind
            // TLS (in production), keep the default: `Secure`.
            .secure_cookie(false)
            .verifier(config.verifier.clone());
        let tenants = Verifiers::parse_tenant_secrets(
            &std::env::var("PLUGIPAY_TENANT_SECRETS").unwrap_or_default(),
        )
        .unwrap_or_default();
        for (tenant, verifier) in tenants {
            builder = builder.tenant_verifier(tenant, verifier);
        }
        match builder.build() {
            Ok(console) => Some(console),
            Err(e) => exit_with(&format!("PLUGIPAY_CONSOLE_TOKEN: {e}")),
        }
    }

    /// Stops the inbox's workers (letting in-flight events finish within
    /// 30 s); nothing in dispatch mode.
    pub async fn shutdown(&self) {
        if let Mode::Inbox { workers, .. } = &self.mode {
            let running = workers.lock().ok().and_then(|mut w| w.take());
            if let Some(running) = running {
                running.shutdown(Duration::from_secs(30)).await;
            }
        }
    }

    /// `GET /healthz`: the status and JSON body, from a round trip to the
    /// de-duplication store.
    pub async fn health(&self) -> (u16, &'static str) {
        let health = match &self.mode {
            Mode::Dispatch(dispatcher) => dispatcher.health().await,
            Mode::Inbox { inbox, .. } => inbox.health().await,
        };
        match health {
            Ok(()) => (200, r#"{"status":"ok"}"#),
            Err(e) => {
                tracing::warn!(error = %e, "health check: the de-duplication store does not answer");
                (503, r#"{"status":"store_unavailable"}"#)
            }
        }
    }

    /// Dispatches one verified event and prints `handled <id> <type>` or
    /// `duplicate <id>`; the outcome says how to answer (`docs/dedup.md`).
    pub async fn handle(&self, event: &WebhookEvent) -> Outcome {
        let dispatcher = match &self.mode {
            Mode::Dispatch(dispatcher) => dispatcher,
            // Stored (202) or not (503): the workers print `handled`/`dead`.
            Mode::Inbox { inbox, .. } => return inbox.receive(event).await,
        };
        let outcome = dispatcher.dispatch(event).await;
        if self.quiet {
            return outcome;
        }
        match outcome {
            Outcome::Handled => say(&with_tenant(
                format!("handled {} {}", event.id(), event.event_type()),
                event.tenant(),
            )),
            Outcome::Duplicate => say(&with_tenant(
                format!("duplicate {}", event.id()),
                event.tenant(),
            )),
            // Unknown types are logged by the dispatcher; failures too.
            _ => {}
        }
        outcome
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `line`, with `tenant=<name>` as its last field for a tenant's delivery.
fn with_tenant(line: String, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{line} tenant={t}"),
        None => line,
    }
}

/// One line on stdout, flushed, written whole; ids, types and tenants come
/// from signed bodies, so anything in them that could steer a terminal or
/// start a new line is escaped (a signed id with `\n` cannot forge a
/// `handled …` line).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", plugipay_webhook_dispatch::printable(line));
    let _ = out.flush();
}

fn field<'a>(event: &'a WebhookEvent, name: &str) -> &'a serde_json::Value {
    &event.object()[name]
}

fn customer_created(e: &WebhookEvent) {
    tracing::info!(customer = %field(e, "id"), "customer created");
}

fn invoice_paid(e: &WebhookEvent) {
    tracing::info!(invoice = %field(e, "id"), total = %field(e, "total"), "invoice paid");
}

fn checkout_succeeded(e: &WebhookEvent) {
    tracing::info!(session = %field(e, "id"), "checkout session succeeded");
}

fn subscription_cancelled(e: &WebhookEvent) {
    tracing::info!(subscription = %field(e, "id"), "subscription cancelled");
}

fn refund_succeeded(e: &WebhookEvent) {
    tracing::info!(refund = %field(e, "id"), amount = %field(e, "amount"), "refund succeeded");
}

fn payout_paid(e: &WebhookEvent) {
    tracing::info!(payout = %field(e, "id"), amount = %field(e, "amount"), "payout paid");
}
