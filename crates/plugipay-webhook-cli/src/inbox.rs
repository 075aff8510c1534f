//! `inbox`: operate a durable inbox — counts, listings, tamper evidence,
//! retries, replays and pruning.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use plugipay_webhook::{testing, Verifier};
use plugipay_webhook_console::{Auth, Console};
use plugipay_webhook_dispatch::inbox::{
    existing_inbox_from_url, occurred_at_ms, Cursor, Inbox, ListFilter, PruneFilter, Record,
    RetryFilter, State, MIN_PRUNE_AGE,
};
use serde_json::json;

use crate::client::{Conn, Target, TlsArgs};
use crate::secret::SecretArgs;
use crate::Failure;

/// Arguments of `inbox`.
#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    /// The inbox: `postgres://…`, `sqlite://PATH` or `redis://…`. It must
    /// exist already: these commands never create one.
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
        /// skipped, stale, oldest_due_ms.
        #[arg(long)]
        json: bool,
    },
    /// Events, oldest first (`--newest` for the most recent first), a page
    /// at a time.
    List {
        /// Only this state (pending, running, done, dead, skipped, stale).
        #[arg(long, value_parser = parse_state)]
        state: Option<State>,
        /// Only this type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events received within this age (`90s`, `30m`, `12h`, `7d`).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        since: Option<Duration>,
        /// One object's timeline: its events (`data.object.id` = ID) in
        /// `occurred_at` order, each arrived after a later one marked `late`.
        #[arg(long, value_name = "ID", conflicts_with_all = ["newest", "after"])]
        object: Option<String>,
        /// Newest first.
        #[arg(long)]
        newest: bool,
        /// The next page: the cursor printed after the previous one.
        #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
        after: Option<Cursor>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON line per event (with its `cursor`).
        #[arg(long)]
        json: bool,
    },
    /// One event, and whether its stored bytes still verify against its
    /// stored header at the time it was received (tamper evidence; a
    /// tenant's event against that tenant's secrets, from
    /// PLUGIPAY_TENANT_SECRETS).
    Show {
        /// The event id.
        id: String,
        /// Only this tenant's event of that id.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON object per stored event.
        #[arg(long)]
        json: bool,
    },
    /// Make dead, skipped or stale events pending again, with their attempts
    /// reset (`--done ID --force` runs a done event again, on purpose).
    Retry {
        /// One event (dead, skipped or stale; done with --done --force).
        #[arg(required_unless_present_any = ["dead", "skipped", "stale", "handler"], conflicts_with_all = ["dead", "skipped", "stale"])]
        id: Option<String>,
        /// Every dead event.
        #[arg(long)]
        dead: bool,
        /// Every skipped event (after deploying a handler for their type).
        #[arg(long)]
        skipped: bool,
        /// Every stale event (ordering; they come up stale again unless the
        /// receiver now delivers stale events).
        #[arg(long)]
        stale: bool,
        /// The done event ID too (with --force: its handler runs again).
        #[arg(long, requires_all = ["id", "force"])]
        done: bool,
        /// Confirms --done.
        #[arg(long)]
        force: bool,
        /// Only events of this type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this handler runs again: of dead events (`--dead`), or —
        /// alone — of dead and done ones, where it has not succeeded (the
        /// backfill of a handler deployed later: `--handler NAME --type T
        /// --since 7d`). Its siblings' successes are never rerun.
        #[arg(long, value_name = "NAME")]
        handler: Option<String>,
        /// Only events received within this age (`90s`, `30m`, `12h`, `7d`).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        since: Option<Duration>,
    },
    /// Send a stored event's exact bytes to URL, signed afresh (a tenant's
    /// event with that tenant's secrets, from PLUGIPAY_TENANT_SECRETS).
    Replay {
        /// The event id.
        id: String,
        /// Only this tenant's event of that id.
        #[arg(long)]
        tenant: Option<String>,
        /// Where to send it.
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Serve the web console for this inbox on 127.0.0.1 (a fresh token
    /// each run, printed as a login URL; Ctrl-C stops it). Stored events are
    /// re-verified with the secret(s) and PLUGIPAY_TENANT_SECRETS, when set.
    Ui {
        /// The port (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Show, never retry.
        #[arg(long)]
        read_only: bool,
    },
    /// Delete done events older than D (`90s`, `30m`, `12h`, `7d`); never
    /// pending, running or dead ones. Under 7 days only with --force: a
    /// late redelivery of a pruned event is processed again.
    Prune {
        /// The age.
        #[arg(long, value_name = "D", value_parser = parse_age)]
        older_than: Duration,
        /// Skipped events too (acknowledged, never processed).
        #[arg(long)]
        skipped: bool,
        /// Prune under 7 days.
        #[arg(long)]
        force: bool,
    },
}

fn parse_state(text: &str) -> Result<State, String> {
    State::from_name(text)
        .ok_or_else(|| format!("{text:?}: one of pending, running, done, dead, skipped, stale"))
}

fn parse_cursor(text: &str) -> Result<Cursor, String> {
    Cursor::from_token(text)
        .ok_or_else(|| format!("{text:?} is not a cursor printed by `inbox list`"))
}

/// `90s`, `30m`, `12h`, `7d`: at most 100 years.
pub(crate) fn parse_age(text: &str) -> Result<Duration, String> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?}: a number and s, m, h or d"))?;
    let per = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(per)
        .map(Duration::from_secs)
        .filter(|d| *d <= plugipay_webhook_dispatch::MAX_DURATION)
        .ok_or_else(|| format!("{text:?}: at most 100 years"))
}

fn store(e: impl std::fmt::Display) -> Failure {
    Failure::io(e.to_string())
}

fn now_ms() -> i64 {
    crate::time::now().saturating_mul(1000)
}

/// The handlers' states in one field: `ledger=done,notify=dead`.
fn handlers_field(r: &Record) -> String {
    if r.handlers.is_empty() {
        return String::new();
    }
    let states: Vec<String> = r
        .handlers
        .iter()
        .map(|h| format!("{}={}", h.name, h.state))
        .collect();
    format!("  handlers {}", states.join(","))
}

/// The handlers' states as JSON: name → state and attempts.
fn handlers_json(r: &Record) -> serde_json::Value {
    r.handlers
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                json!({"state": h.state.as_str(), "attempts": h.attempts, "last_error": h.last_error}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn line(r: &Record) -> String {
    format!(
        "{}  {}  {}  attempts {}  received {}{}{}{}",
        r.id,
        r.event_type,
        r.state,
        r.attempts,
        crate::time::iso8601(r.received_at_ms / 1000),
        handlers_field(r),
        r.tenant()
            .map(|t| format!("  tenant {t}"))
            .unwrap_or_default(),
        r.last_error
            .as_deref()
            .map(|e| format!("  last error: {e}"))
            .unwrap_or_default()
    )
}

/// The records of `id` (of one tenant, when given), or "not found".
async fn find(inbox: &Inbox, id: &str, tenant: Option<&str>) -> Result<Vec<Record>, Failure> {
    let records: Vec<Record> = inbox
        .get(id)
        .await
        .map_err(store)?
        .into_iter()
        .filter(|r| tenant.is_none_or(|t| r.tenant == t))
        .collect();
    if records.is_empty() {
        let of = tenant
            .map(|t| format!(" of tenant {t}"))
            .unwrap_or_default();
        return Err(Failure::not_found(format!(
            "no event {id}{of} in the inbox"
        )));
    }
    Ok(records)
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
        let backend = existing_inbox_from_url(&url).await.map_err(store)?;
        let inbox = Inbox::builder(backend).build().map_err(store)?;
        match args.command {
            InboxCommand::Stats { json } => stats(&inbox, json).await,
            InboxCommand::List {
                state,
                event_type,
                tenant,
                since,
                object,
                newest,
                after,
                limit,
                json,
            } => {
                let timeline = object.is_some();
                let filter = ListFilter {
                    object_id: object,
                    state,
                    event_type,
                    tenant,
                    since_ms: since.map(|d| {
                        now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    }),
                    after,
                    newest_first: newest,
                    limit: limit.max(1),
                    ..ListFilter::default()
                };
                if timeline {
                    return timeline_of(&inbox, filter, json).await;
                }
                list(&inbox, &filter, json).await
            }
            InboxCommand::Show { id, tenant, json } => {
                show(secret, &inbox, &id, tenant.as_deref(), json).await
            }
            InboxCommand::Retry {
                id,
                dead,
                skipped,
                stale,
                done,
                force: _,
                event_type,
                tenant,
                handler,
                since,
            } => {
                // `--handler` alone: a backfill of dead and done events.
                let backfill = handler.is_some() && !(dead || skipped || stale);
                retry(
                    &inbox,
                    RetryFilter {
                        // One event: whichever of those states it is in.
                        dead: dead || id.is_some() || backfill,
                        skipped: skipped || id.is_some(),
                        stale: stale || id.is_some(),
                        done: done || backfill,
                        id,
                        event_type,
                        tenant,
                        handler,
                        since_ms: since.map(|d| {
                            now_ms()
                                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                        }),
                    },
                )
                .await
            }
            InboxCommand::Replay {
                id,
                tenant,
                to,
                tls,
            } => replay(secret, &inbox, &id, tenant.as_deref(), &to, &tls).await,
            InboxCommand::Ui { port, read_only } => ui(secret, inbox, port, read_only).await,
            InboxCommand::Prune {
                older_than,
                skipped,
                force,
            } => {
                if older_than < MIN_PRUNE_AGE && !force {
                    return Err(Failure::usage(format!(
                        "refusing to prune events younger than 7 days ({}): Plugipay may still \
                         redeliver them, and a redelivery of a pruned event is stored as new and \
                         processed again; pass --force to prune anyway",
                        humantime(older_than)
                    )));
                }
                let n = inbox
                    .prune_with(&PruneFilter {
                        older_than,
                        skipped,
                        force,
                    })
                    .await
                    .map_err(store)?;
                let what = if skipped { "done or skipped" } else { "done" };
                say(&format!(
                    "{n} {what} event{} deleted",
                    if n == 1 { "" } else { "s" }
                ));
                Ok(0)
            }
        }
    })
}

/// `inbox ui`: the console on 127.0.0.1, behind a token made for this run.
async fn ui(secret: &SecretArgs, inbox: Inbox, port: u16, read_only: bool) -> Result<u8, Failure> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw)
        .map_err(|e| Failure::io(format!("no randomness for a token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Served over plain HTTP on 127.0.0.1: the cookie cannot be `Secure`.
    let mut builder = Console::builder(inbox, Auth::bearer(token.clone()))
        .read_only(read_only)
        .secure_cookie(false);
    if let Ok(secrets) = secret.secrets() {
        builder = builder.verifier(Verifier::from_secrets(&secrets));
    }
    let tenants = std::env::var("PLUGIPAY_TENANT_SECRETS").unwrap_or_default();
    if let Ok(tenants) = plugipay_webhook::http::Verifiers::parse_tenant_secrets(&tenants) {
        for (name, verifier) in tenants {
            builder = builder.tenant_verifier(name, verifier);
        }
    }
    let console = builder
        .build()
        .map_err(|e| Failure::config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Failure::io(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::io(e.to_string()))?;
    say(&format!(
        "console on http://{addr}/console/login?token={token}"
    ));
    let app: axum::Router = axum::Router::new().merge(console.router());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::io(format!("the console stopped: {e}")))?;
    Ok(0)
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

async fn stats(inbox: &Inbox, json: bool) -> Result<u8, Failure> {
    let stats = inbox.stats().await.map_err(store)?;
    if json {
        json_out(&json!({
            "pending": stats.count(State::Pending),
            "running": stats.count(State::Running),
            "done": stats.count(State::Done),
            "dead": stats.count(State::Dead),
            "skipped": stats.count(State::Skipped),
            "stale": stats.count(State::Stale),
            "oldest_due_ms": stats.oldest_due_ms,
            "next_lease_lapse_ms": stats.next_lease_lapse_ms,
        }));
    } else {
        for state in State::ALL {
            say(&format!("{:8} {}", state.as_str(), stats.count(state)));
        }
        say(&format!(
            "oldest due: {:.1} s",
            stats.oldest_due_ms as f64 / 1000.0
        ));
        // Running events held by a worker that stopped stay `running` until
        // their lease lapses: say when that is.
        match stats.next_lease_lapse_ms {
            Some(ms) if ms >= 0 => say(&format!(
                "running: the first lease lapses in {:.1} s (a worker that stopped is noticed then)",
                ms as f64 / 1000.0
            )),
            Some(ms) => say(&format!(
                "running: a lease lapsed {:.1} s ago (the event waits for a worker to take it again)",
                -ms as f64 / 1000.0
            )),
            None => {}
        }
    }
    Ok(0)
}

async fn list(inbox: &Inbox, filter: &ListFilter, json: bool) -> Result<u8, Failure> {
    let page = inbox.list_page(filter).await.map_err(store)?;
    let records = page.records;
    for r in &records {
        if json {
            json_out(&json!({
                "id": r.id, "type": r.event_type, "tenant": r.tenant(), "state": r.state.as_str(),
                "attempts": r.attempts, "received_at_ms": r.received_at_ms,
                "next_attempt_at_ms": r.due_at_ms, "last_error": r.last_error,
                "handlers": handlers_json(r), "cursor": r.cursor().to_token(),
            }));
        } else {
            say(&line(r));
        }
    }
    if let (false, Some(next)) = (json, &page.next) {
        eprintln!("more: --after {}", next.to_token());
    }
    Ok(0)
}

/// `list --object ID`: every event of the object (page after page), in
/// the order they happened — `occurred_at`, then arrival — each that
/// arrived after one that happened later marked `late`.
async fn timeline_of(inbox: &Inbox, mut filter: ListFilter, json: bool) -> Result<u8, Failure> {
    let wanted = filter.limit as usize;
    filter.limit = 500;
    let mut records: Vec<Record> = Vec::new();
    loop {
        let page = inbox.list_page(&filter).await.map_err(store)?;
        records.extend(page.records);
        filter.after = page.next;
        if filter.after.is_none() {
            break;
        }
    }
    let at = |r: &Record| r.occurred_at.as_deref().and_then(occurred_at_ms);
    let order = |r: &Record| (at(r).unwrap_or(r.received_at_ms), r.received_at_ms);
    records.sort_by_key(|r| (order(r), r.id.clone(), r.event_type.clone()));
    for (i, r) in records.iter().enumerate().take(wanted) {
        // Late: an event that happened after it was received before it.
        let late = records[i + 1..]
            .iter()
            .any(|later| order(later).0 > order(r).0 && later.received_at_ms < r.received_at_ms);
        if json {
            json_out(&json!({
                "id": r.id, "type": r.event_type, "tenant": r.tenant(), "state": r.state.as_str(),
                "occurred_at": r.occurred_at, "received_at_ms": r.received_at_ms,
                "attempts": r.attempts, "last_error": r.last_error, "late": late,
            }));
        } else {
            say(&format!(
                "{}  {}  {}  occurred {}  received {}{}",
                r.id,
                r.event_type,
                r.state,
                r.occurred_at.as_deref().unwrap_or("-"),
                crate::time::iso8601(r.received_at_ms / 1000),
                if late {
                    "  late (arrived after a later event)"
                } else {
                    ""
                }
            ));
        }
    }
    if records.is_empty() {
        eprintln!("no events about that object");
        return Ok(5);
    }
    Ok(0)
}

async fn show(
    secret: &SecretArgs,
    inbox: &Inbox,
    id: &str,
    tenant: Option<&str>,
    json: bool,
) -> Result<u8, Failure> {
    let records = find(inbox, id, tenant).await?;
    let mut all_valid = true;
    for r in &records {
        let secrets = secret.secrets_for(r.tenant()).ok();
        let check = secrets.as_ref().map(|s| {
            Verifier::from_secrets(s).verify_at(
                &r.body[..],
                Some(&r.signature),
                r.received_at_ms / 1000,
            )
        });
        let whose = r
            .tenant()
            .map(|t| format!("tenant {t}'s"))
            .unwrap_or_else(|| "the".to_owned());
        let verdict = match &check {
            None => format!("not re-verified: {whose} secret is not configured"),
            Some(Ok(e)) => format!(
                "the stored bytes verify against the stored header ({whose} secret #{})",
                e.matched_secret()
            ),
            Some(Err(e)) => {
                all_valid = false;
                format!("DOES NOT VERIFY with {whose} secrets: {e}")
            }
        };
        if json {
            json_out(&json!({
                "id": r.id, "type": r.event_type, "tenant": r.tenant(), "state": r.state.as_str(),
                "attempts": r.attempts, "received_at_ms": r.received_at_ms,
                "last_error": r.last_error, "signature": r.signature,
                "verified": check.as_ref().map(Result::is_ok), "verdict": verdict,
                "handlers": r.handlers,
                "body": String::from_utf8_lossy(&r.body),
            }));
        } else {
            say(&line(r));
            say(&format!("  signature: {}", r.signature));
            say(&format!("  {verdict}"));
            for h in &r.handlers {
                say(&format!(
                    "  handler {}: {}, attempts {}{}",
                    h.name,
                    h.state,
                    h.attempts,
                    h.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ));
                for a in &h.history {
                    say(&format!(
                        "    {}  {:?}  {} ms{}",
                        crate::time::iso8601(a.started_at_ms / 1000),
                        a.outcome,
                        a.took_ms,
                        a.error
                            .as_deref()
                            .map(|e| format!("  {e}"))
                            .unwrap_or_default()
                    ));
                }
            }
            say(&format!("  {}", String::from_utf8_lossy(&r.body)));
        }
    }
    Ok(if all_valid { 0 } else { 13 })
}

async fn retry(inbox: &Inbox, filter: RetryFilter) -> Result<u8, Failure> {
    // One event: say why nothing moved.
    let known = match &filter.id {
        Some(id) => Some(find(inbox, id, filter.tenant.as_deref()).await?),
        None => None,
    };
    let n = inbox.retry(&filter).await.map_err(store)?;
    say(&format!(
        "{n} event{} pending again",
        if n == 1 { "" } else { "s" }
    ));
    if let (0, Some(records)) = (n, known) {
        for r in records {
            let why = match r.state {
                State::Done => format!(
                    "{} is done: retry reruns dead or skipped events; `inbox retry --done {} --force` runs a done event again on purpose",
                    r.id, r.id
                ),
                State::Pending | State::Running => {
                    format!("{} is {} already: the workers will run it", r.id, r.state)
                }
                other => format!("{} is {other}", r.id),
            };
            say(&format!("  {why}"));
        }
        return Ok(1);
    }
    Ok(0)
}

async fn replay(
    secret: &SecretArgs,
    inbox: &Inbox,
    id: &str,
    tenant: Option<&str>,
    to: &str,
    tls: &TlsArgs,
) -> Result<u8, Failure> {
    let records = find(inbox, id, tenant).await?;
    if records.len() > 1 {
        let tenants: Vec<&str> = records
            .iter()
            .map(|r| r.tenant().unwrap_or("(none)"))
            .collect();
        return Err(Failure::usage(format!(
            "{id} is stored for several tenants ({}): pass --tenant",
            tenants.join(", ")
        )));
    }
    let record = &records[0];
    let secrets = secret.secrets_for(record.tenant())?;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signature = testing::sign_header_multi(&refs, crate::time::now(), &record.body);
    let mut conn = Conn::new(Target::parse(to, tls)?);
    let started = Instant::now();
    let headers = [(plugipay_webhook::SIGNATURE_HEADER.to_owned(), signature)];
    match conn
        .post(record.body.clone(), &headers, Duration::from_secs(30))
        .await
    {
        Ok((status, body)) => {
            say(&format!(
                "{id}  {}  {:.1} ms  {}",
                status.as_u16(),
                crate::send::ms(started.elapsed()),
                String::from_utf8_lossy(&body)
            ));
            Ok(if status.is_success() { 0 } else { 1 })
        }
        Err(e) => {
            say(&format!("{id}  no answer  {e}"));
            Ok(1)
        }
    }
}

/// One line of a listing, with every character from a signed field that
/// could steer the terminal escaped (`printable`): an event's id, type,
/// tenant, handler names, errors and body come from the sender.
fn say(line: &str) {
    crate::out(&plugipay_webhook_dispatch::printable(line));
}

/// One JSON line, the same JSON with any such character as `\uXXXX`.
fn json_out(value: &serde_json::Value) {
    crate::out(&plugipay_webhook_dispatch::printable_json(
        &value.to_string(),
    ));
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_are_checked_not_wrapped() {
        assert_eq!(parse_age("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_age("7d").unwrap().as_secs(), 7 * 86_400);
        // 2^57 days: the product overflowed u64 (a panic in debug builds,
        // 0 — "delete everything" — in release).
        assert!(parse_age("144115188075855872d").is_err());
        assert!(parse_age("200000000000h").is_err(), "over 100 years");
        assert!(parse_age("5w").is_err());
    }
}
