//! `inbox`: operate a durable inbox — counts, listings, tamper evidence,
//! retries, replays and pruning.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use plugipay_webhook::{testing, Verifier};
use plugipay_webhook_dispatch::inbox::{inbox_from_url, Inbox, Record, RetryFilter, State};
use serde_json::json;

use crate::client::{Conn, Target, TlsArgs};
use crate::secret::SecretArgs;
use crate::Failure;

/// Arguments of `inbox`.
#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    /// The inbox: `postgres://…`, `sqlite://PATH` or `redis://…`.
    #[arg(
        long,
        env = "PLUGIPAY_INBOX_URL",
        hide_env_values = true,
        global = true
    )]
    url: Option<String>,

    #[command(subcommand)]
    command: InboxCommand,
}

#[derive(Debug, Subcommand)]
enum InboxCommand {
    /// Counts by state and the oldest due event's age.
    Stats {
        /// One JSON object: integer fields pending, running, done, dead,
        /// skipped, oldest_due_ms.
        #[arg(long)]
        json: bool,
    },
    /// Events, oldest first.
    List {
        /// Only this state (pending, running, done, dead, skipped).
        #[arg(long, value_parser = parse_state)]
        state: Option<State>,
        /// Only this type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON line per event.
        #[arg(long)]
        json: bool,
    },
    /// One event, and whether its stored bytes still verify against its
    /// stored header at the time it was received (tamper evidence).
    Show {
        /// The event id.
        id: String,
        /// One JSON object per stored type.
        #[arg(long)]
        json: bool,
    },
    /// Make dead or skipped events pending again, with their attempts reset.
    Retry {
        /// One event (dead or skipped).
        #[arg(required_unless_present_any = ["dead", "skipped"], conflicts_with_all = ["dead", "skipped"])]
        id: Option<String>,
        /// Every dead event.
        #[arg(long)]
        dead: bool,
        /// Every skipped event (after deploying a handler for their type).
        #[arg(long)]
        skipped: bool,
        /// Only events of this type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
    },
    /// Send a stored event's exact bytes to URL, signed afresh.
    Replay {
        /// The event id.
        id: String,
        /// Where to send it.
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Delete done and skipped events older than D (`90s`, `30m`, `12h`, `7d`).
    Prune {
        /// The age.
        #[arg(long, value_name = "D", value_parser = parse_age)]
        older_than: Duration,
    },
}

fn parse_state(text: &str) -> Result<State, String> {
    State::from_name(text)
        .ok_or_else(|| format!("{text:?}: one of pending, running, done, dead, skipped"))
}

fn parse_age(text: &str) -> Result<Duration, String> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?}: a number and s, m, h or d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

fn store(e: impl std::fmt::Display) -> Failure {
    Failure::io(e.to_string())
}

fn line(r: &Record) -> String {
    format!(
        "{}  {}  {}  attempts {}  received {}{}",
        r.id,
        r.event_type,
        r.state,
        r.attempts,
        crate::time::iso8601(r.received_at_ms / 1000),
        r.last_error
            .as_deref()
            .map(|e| format!("  last error: {e}"))
            .unwrap_or_default()
    )
}

pub(crate) fn run(secret: &SecretArgs, args: InboxArgs) -> Result<u8, Failure> {
    let url = args
        .url
        .clone()
        .ok_or_else(|| Failure::config("no inbox: pass --url or set PLUGIPAY_INBOX_URL"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let backend = inbox_from_url(&url).await.map_err(store)?;
        let inbox = Inbox::builder(backend).build().map_err(store)?;
        match args.command {
            InboxCommand::Stats { json } => {
                let stats = inbox.stats().await.map_err(store)?;
                if json {
                    println!(
                        "{}",
                        json!({
                            "pending": stats.count(State::Pending),
                            "running": stats.count(State::Running),
                            "done": stats.count(State::Done),
                            "dead": stats.count(State::Dead),
                            "skipped": stats.count(State::Skipped),
                            "oldest_due_ms": stats.oldest_due_ms,
                        })
                    );
                } else {
                    for state in State::ALL {
                        println!("{:8} {}", state.as_str(), stats.count(state));
                    }
                    println!("oldest due: {:.1} s", stats.oldest_due_ms as f64 / 1000.0);
                }
                Ok(0)
            }
            InboxCommand::List { state, event_type, limit, json } => {
                for r in inbox.list(state, event_type.as_deref(), limit).await.map_err(store)? {
                    if json {
                        println!(
                            "{}",
                            json!({
                                "id": r.id, "type": r.event_type, "state": r.state.as_str(),
                                "attempts": r.attempts, "received_at_ms": r.received_at_ms,
                                "next_attempt_at_ms": r.next_attempt_at_ms, "last_error": r.last_error,
                            })
                        );
                    } else {
                        println!("{}", line(&r));
                    }
                }
                Ok(0)
            }
            InboxCommand::Show { id, json } => {
                let records = inbox.get(&id).await.map_err(store)?;
                if records.is_empty() {
                    return Err(Failure::io(format!("no event {id} in the inbox")));
                }
                let secrets = secret.secrets().ok();
                let mut all_valid = true;
                for r in &records {
                    let check = secrets.as_ref().map(|s| {
                        Verifier::from_secrets(s).verify_at(
                            &r.body[..],
                            Some(&r.signature),
                            r.received_at_ms / 1000,
                        )
                    });
                    let verdict = match &check {
                        None => "not re-verified: no secret configured".to_owned(),
                        Some(Ok(e)) => format!("the stored bytes verify against the stored header (secret #{})", e.matched_secret()),
                        Some(Err(e)) => {
                            all_valid = false;
                            format!("DOES NOT VERIFY: {e}")
                        }
                    };
                    if json {
                        println!(
                            "{}",
                            json!({
                                "id": r.id, "type": r.event_type, "state": r.state.as_str(),
                                "attempts": r.attempts, "received_at_ms": r.received_at_ms,
                                "last_error": r.last_error, "signature": r.signature,
                                "verified": check.as_ref().map(Result::is_ok), "verdict": verdict,
                                "body": String::from_utf8_lossy(&r.body),
                            })
                        );
                    } else {
                        println!("{}", line(r));
                        println!("  signature: {}", r.signature);
                        println!("  {verdict}");
                        println!("  {}", String::from_utf8_lossy(&r.body));
                    }
                }
                Ok(if all_valid { 0 } else { 13 })
            }
            InboxCommand::Retry { id, dead, skipped, event_type } => {
                let n = inbox
                    .retry(&RetryFilter { id, dead, skipped, event_type })
                    .await
                    .map_err(store)?;
                println!("{n} event{} pending again", if n == 1 { "" } else { "s" });
                Ok(0)
            }
            InboxCommand::Replay { id, to, tls } => {
                let secrets = secret.secrets()?;
                let records = inbox.get(&id).await.map_err(store)?;
                let record = records
                    .first()
                    .ok_or_else(|| Failure::io(format!("no event {id} in the inbox")))?;
                let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
                let signature = testing::sign_header_multi(&refs, crate::time::now(), &record.body);
                let mut conn = Conn::new(Target::parse(&to, &tls)?);
                let started = Instant::now();
                let headers = [(plugipay_webhook::SIGNATURE_HEADER.to_owned(), signature)];
                match conn.post(record.body.clone(), &headers, Duration::from_secs(30)).await {
                    Ok((status, body)) => {
                        println!(
                            "{id}  {}  {:.1} ms  {}",
                            status.as_u16(),
                            crate::send::ms(started.elapsed()),
                            String::from_utf8_lossy(&body)
                        );
                        Ok(if status.is_success() { 0 } else { 1 })
                    }
                    Err(e) => {
                        println!("{id}  no answer  {e}");
                        Ok(1)
                    }
                }
            }
            InboxCommand::Prune { older_than } => {
                let n = inbox.prune(older_than).await.map_err(store)?;
                println!("{n} done or skipped event{} deleted", if n == 1 { "" } else { "s" });
                Ok(0)
            }
        }
    })
}
