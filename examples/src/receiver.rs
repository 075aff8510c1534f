//! What every example receiver does with a verified event, whatever the
//! framework: the seed's Flask example, done properly.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use plugipay_webhook::{Verifier, WebhookEvent};

/// The route every example serves.
pub const WEBHOOK_ROUTE: &str = "/webhooks/plugipay";

/// Start-up configuration from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// From `PLUGIPAY_WEBHOOK_SECRET` (comma-separated during a rotation).
    pub verifier: Verifier,
    /// From `PORT`, default 3000.
    pub port: u16,
}

impl Config {
    /// Reads the environment, or prints why it cannot and exits with status 2.
    #[must_use]
    pub fn from_env_or_exit() -> Config {
        match Config::from_env() {
            Ok(c) => c,
            Err(msg) => {
                eprintln!("error: {msg}");
                std::process::exit(2);
            }
        }
    }

    /// Reads `PLUGIPAY_WEBHOOK_SECRET` and `PORT`.
    pub fn from_env() -> Result<Config, String> {
        let verifier = Verifier::from_env().map_err(|e| e.to_string())?;
        let port = match std::env::var("PORT") {
            Ok(p) => p
                .trim()
                .parse()
                .map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
            Err(_) => 3000,
        };
        Ok(Config { verifier, port })
    }

    /// `127.0.0.1:<port>`.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Logs to stderr (`RUST_LOG`, default `info`), leaving stdout to the
/// `handled …` / `duplicate …` lines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// First delivery: the handler ran.
    Handled,
    /// Already handled (or being handled): acknowledged without running again.
    Duplicate,
}

type Handler = fn(&WebhookEvent);

/// The handler table and the in-process de-duplication set.
///
/// Delivery is at least once, so the same `(id, type)` can arrive several
/// times, even concurrently. The key is claimed atomically before the handler
/// runs, so exactly one delivery runs it; the rest are duplicates.
#[derive(Clone)]
pub struct Receiver {
    seen: Arc<Mutex<HashSet<(String, String)>>>,
    handlers: Arc<Vec<(&'static str, Handler)>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field(
                "handlers",
                &self.handlers.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

impl Receiver {
    /// A receiver with handlers for the seed's event catalog.
    #[must_use]
    pub fn new() -> Receiver {
        let handlers: Vec<(&'static str, Handler)> = vec![
            ("plugipay.customer.created.v1", customer_created),
            ("plugipay.invoice.paid.v1", invoice_paid),
            ("plugipay.checkout_session.succeeded.v1", checkout_succeeded),
            ("plugipay.subscription.cancelled.v1", subscription_cancelled),
            ("plugipay.refund.succeeded.v1", refund_succeeded),
            ("plugipay.payout.paid.v1", payout_paid),
        ];
        Receiver {
            seen: Arc::default(),
            handlers: Arc::new(handlers),
        }
    }

    /// Handles one verified event: de-duplicate, dispatch, print the outcome.
    pub fn handle(&self, event: &WebhookEvent) -> Outcome {
        let key = (event.id().to_owned(), event.event_type().to_owned());
        let first = match self.seen.lock() {
            Ok(mut seen) => seen.insert(key),
            Err(poisoned) => poisoned.into_inner().insert(key),
        };
        if !first {
            say(&format!("duplicate {}", event.id()));
            return Outcome::Duplicate;
        }
        match self.handlers.iter().find(|(t, _)| *t == event.event_type()) {
            Some((_, handler)) => handler(event),
            // Unknown event: log and acknowledge so Plugipay stops retrying.
            None => tracing::info!(event_type = event.event_type(), "plugipay event unhandled"),
        }
        say(&format!("handled {} {}", event.id(), event.event_type()));
        Outcome::Handled
    }
}

/// One line on stdout, flushed, written whole.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
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
