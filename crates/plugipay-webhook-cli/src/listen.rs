//! `listen`: a development receiver on the axum adapter.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::Args;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_axum::{VerifiedEvent, WebhookRejection};
use serde_json::json;

use crate::secret::SecretArgs;
use crate::Failure;

/// Arguments of `listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Port on 127.0.0.1 (0 picks a free one; default: $PORT, else 3000).
    #[arg(long, short = 'p')]
    port: Option<u16>,

    /// Tolerance in seconds.
    #[arg(long, default_value_t = 300)]
    tolerance: u64,

    /// One JSON line per delivery on stdout instead of pretty text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone)]
struct Printer {
    json: bool,
    color: bool,
    seen: Arc<Mutex<HashSet<(String, String)>>>,
}

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Verifier,
    printer: Printer,
}

impl Printer {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn event(&self, event: &WebhookEvent) {
        let key = (event.id().to_owned(), event.event_type().to_owned());
        let duplicate = self
            .seen
            .lock()
            .map(|mut s| !s.insert(key))
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
            }))
        } else {
            let object = serde_json::to_string_pretty(event.object()).unwrap_or_default();
            format!(
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
            )
        };
        say(&line);
    }

    fn rejection(&self, r: &WebhookRejection) {
        let line = if self.json {
            json_line(
                &json!({"ok": false, "status": r.status().as_u16(), "error": r.code(), "message": r.to_string()}),
            )
        } else {
            format!(
                "{} {} {}",
                self.paint("31;1", "✘ rejected"),
                r.status().as_u16(),
                printable(&r.to_string())
            )
        };
        say(&line);
    }
}

/// Whether a character could steer a terminal or reorder what it shows:
/// C0 and C1 controls, DEL, and the bidirectional overrides and isolates.
fn steers_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text from a signed body, made safe to print: a signature proves who sent
/// it, not that it holds no escape sequences. Controls are shown as
/// `\u{1b}`; newlines and tabs too, so a field stays on its line.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, |c| format!("\\u{{{c:x}}}"))
}

/// A JSON line with every character that could steer a terminal escaped as
/// `\uXXXX` (serde_json escapes only C0 controls); still the same JSON.
fn json_line(value: &serde_json::Value) -> String {
    escape(&value.to_string(), |c| format!("\\u{c:04x}")).into_owned()
}

/// `text` with every character that steers a terminal written by `spell`.
fn escape(text: &str, spell: fn(u32) -> String) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(steers_terminal) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if steers_terminal(c) {
            out.push_str(&spell(u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn receive(
    State(printer): State<Printer>,
    event: Result<VerifiedEvent, WebhookRejection>,
) -> Response {
    match event {
        Ok(event) => {
            printer.event(&event);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(rejection) => {
            printer.rejection(&rejection);
            rejection.into_response()
        }
    }
}

pub(crate) fn run(secret: &SecretArgs, args: ListenArgs) -> Result<u8, Failure> {
    let verifier = secret
        .verifier()?
        .tolerance(std::time::Duration::from_secs(args.tolerance));
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
    let printer = Printer {
        json: args.json,
        color: !args.json
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .with_state(AppState { verifier, printer });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| Failure::io(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Failure::io(e.to_string()))?;
        say(&format!(
            "listening on http://{addr}  (POST any path; Ctrl-C to stop)"
        ));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Failure::io(e.to_string()))?;
        Ok(0)
    })
}
