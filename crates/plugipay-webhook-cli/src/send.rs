//! `send`: sign and POST deliveries the way Plugipay does.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http::StatusCode;
use plugipay_webhook::testing;
use serde_json::{json, Value};

use crate::client::{parse_header, Conn, Target, TlsArgs};
use crate::secret::SecretArgs;
use crate::{read_input, samples, Failure};

/// Arguments of `send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The receiver, e.g. http://127.0.0.1:3000/webhooks/plugipay (or https://…).
    #[arg(required_unless_present = "list_types")]
    url: Option<String>,

    /// Send a sample event of this type (see --list-types).
    #[arg(long = "type", value_name = "TYPE", required_unless_present_any = ["body", "fixture", "list_types"], conflicts_with = "body")]
    event_type: Option<String>,

    /// Send these exact bytes as the body instead of a sample event.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fixture", "set"])]
    body: Option<PathBuf>,

    /// A JSON template for the event: `{{id}}` and `{{now}}` (Unix seconds)
    /// are filled in; `--set` applies on top.
    #[arg(long, value_name = "FILE", conflicts_with = "event_type")]
    fixture: Option<PathBuf>,

    /// Override one field of the sample or fixture: a dotted path and a JSON
    /// value (a bare word is a string), e.g. `--set data.object.total=5000`.
    /// Repeatable.
    #[arg(long, value_name = "PATH=VALUE")]
    set: Vec<String>,

    /// An extra request header, `NAME:VALUE`. Repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,

    #[command(flatten)]
    tls: TlsArgs,

    /// The event id (default: a fresh `evt_…` per event).
    #[arg(long, conflicts_with = "count")]
    id: Option<String>,

    /// Deliver each event N times with the same id (checks de-duplication).
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: u64,

    /// Send N distinct events.
    #[arg(long, default_value_t = 1, value_name = "N")]
    count: u64,

    /// The events are about N objects: `data.object.id` cycles through
    /// `obj_0` … `obj_<N-1>` (with --count: a load for per-object ordering).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "body")]
    objects: Option<u64>,

    /// Deliveries in flight at once (with --count).
    #[arg(long, default_value_t = 1, value_name = "C")]
    concurrency: u64,

    /// Start at most N events per second (with --count): a steady offered
    /// load, for watching whether a receiver keeps up, instead of as fast as
    /// the concurrency allows.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,

    /// Sign with a timestamp 600 s in the past (the receiver should answer signature_stale).
    #[arg(long)]
    stale: bool,

    /// Change the body after signing (the receiver should answer signature_invalid).
    #[arg(long)]
    tamper: bool,

    /// Retry non-2xx answers like Plugipay: exponential backoff, each attempt signed afresh.
    #[arg(long)]
    retry: bool,

    /// Most attempts per delivery with --retry.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_attempts: u32,

    /// First backoff with --retry, doubled after each attempt.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    backoff_ms: u64,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    timeout: u64,

    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,

    /// List the event types with sample objects, and exit.
    #[arg(long)]
    list_types: bool,
}

/// What one delivery to send looks like before signing.
#[derive(Debug, Clone)]
struct Plan {
    secrets: Arc<Vec<String>>,
    headers: Vec<(String, String)>,
    stale: bool,
    tamper: bool,
    retry: bool,
    max_attempts: u32,
    backoff: Duration,
    timeout: Duration,
}

/// One attempt's outcome.
#[derive(Debug, Clone)]
struct Attempt {
    status: Option<u16>,
    latency: Duration,
    body: String,
}

/// Signs and sends one delivery, retrying when asked; returns every attempt.
async fn deliver(conn: &mut Conn, plan: &Plan, body: &Bytes) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let refs: Vec<&str> = plan.secrets.iter().map(String::as_str).collect();
    for attempt in 1..=plan.max_attempts.max(1) {
        // Every attempt is signed afresh with its own timestamp, as Plugipay does.
        let mut t = crate::time::now();
        if plan.stale {
            t -= 600;
        }
        let signature = testing::sign_header_multi(&refs, t, body);
        let sent = if plan.tamper {
            let mut b = body.to_vec();
            b.push(b' ');
            Bytes::from(b)
        } else {
            body.clone()
        };
        let start = Instant::now();
        let mut headers = plan.headers.clone();
        headers.push((plugipay_webhook::SIGNATURE_HEADER.to_owned(), signature));
        let result = conn.post(sent, &headers, plan.timeout).await;
        let latency = start.elapsed();
        let a = match result {
            Ok((status, bytes)) => Attempt {
                status: Some(status.as_u16()),
                latency,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            },
            Err(e) => Attempt {
                status: None,
                latency,
                body: e,
            },
        };
        let ok = a.status.is_some_and(|s| (200..300).contains(&s));
        attempts.push(a);
        if ok || !plan.retry || attempt == plan.max_attempts {
            break;
        }
        let backoff = plan.backoff.saturating_mul(1 << (attempt - 1).min(16));
        tokio::time::sleep(backoff).await;
    }
    attempts
}

fn status_text(status: Option<u16>) -> String {
    match status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(s) => format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("")),
        None => "no answer".to_owned(),
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The most deliveries one `send` makes (`--count` × `--repeat`): a run keeps
/// one latency per attempt, so an unbounded product could exhaust memory.
pub(crate) const MAX_DELIVERIES: u64 = 10_000_000;

/// The most per-delivery records `send --count --json` keeps (a record is a
/// few dozen bytes; the rest are counted in `records_omitted`).
const MAX_RECORDS: usize = 1_000_000;

/// One delivery of a `--count` run, for `--json`.
#[derive(Clone)]
struct Record {
    id: String,
    status: Option<u16>,
    attempts: usize,
    error: Option<String>,
}

pub(crate) fn run(secret: &SecretArgs, args: SendArgs) -> Result<u8, Failure> {
    if args.list_types {
        for t in samples::EVENT_TYPES {
            outln!("{t}");
        }
        return Ok(0);
    }
    let deliveries = args.count.max(1).checked_mul(args.repeat.max(1));
    if !matches!(deliveries, Some(n) if n <= MAX_DELIVERIES) {
        return Err(Failure::usage(format!(
            "--count {} × --repeat {} is more than {MAX_DELIVERIES} deliveries in one run",
            args.count, args.repeat
        )));
    }
    let secrets = Arc::new(secret.secrets()?);
    let url = args
        .url
        .as_deref()
        .ok_or_else(|| Failure::usage("the receiver's URL is missing"))?;
    let target = Target::parse(url, &args.tls)?;
    let fixed_body = match &args.body {
        Some(path) => Some(Bytes::from(read_input(path)?)),
        None => None,
    };
    let fixture = match &args.fixture {
        Some(path) => Some(
            String::from_utf8(read_input(path)?)
                .map_err(|_| Failure::io(format!("{} is not UTF-8", path.display())))?,
        ),
        None => None,
    };
    let overrides = args
        .set
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::usage)?;
    // Build one body up front: a broken template or path fails before sending.
    if let Some(template) = &fixture {
        fill(template, "evt_check", 0, &overrides).map_err(Failure::usage)?;
    } else if fixed_body.is_none() {
        let now = crate::time::now();
        let event_type = args.event_type.as_deref().unwrap_or_default();
        let mut probe = samples::envelope(
            "evt_check",
            event_type,
            samples::object_for(event_type, now),
            now,
        );
        for (path, value) in &overrides {
            set_path(&mut probe, path, value.clone()).map_err(Failure::usage)?;
        }
    }
    let plan = Plan {
        secrets,
        headers: args.headers.clone(),
        stale: args.stale,
        tamper: args.tamper,
        retry: args.retry,
        max_attempts: if args.retry {
            args.max_attempts.max(1)
        } else {
            1
        },
        backoff: Duration::from_millis(args.backoff_ms),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let event_type = args.event_type.clone().unwrap_or_default();
    let (objects, next_object) = (args.objects, std::sync::atomic::AtomicU64::new(0));
    let make_body = move |id: Option<&str>| -> (String, Bytes) {
        if let Some(b) = &fixed_body {
            let id = serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "-".to_owned());
            return (id, b.clone());
        }
        let now = crate::time::now();
        let id = id.map_or_else(|| samples::new_id("evt"), str::to_owned);
        let mut env = match &fixture {
            Some(template) => fill(template, &id, now, &overrides).expect("checked before sending"),
            None => {
                let mut env =
                    samples::envelope(&id, &event_type, samples::object_for(&event_type, now), now);
                for (path, value) in &overrides {
                    set_path(&mut env, path, value.clone()).expect("checked before sending");
                }
                env
            }
        };
        if let Some(n) = objects {
            let k = next_object.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
            let object = serde_json::Value::String(format!("obj_{k}"));
            let path = ["data".to_owned(), "object".to_owned(), "id".to_owned()];
            // A fixture whose `data` is not an object keeps its own.
            let _ = set_path(&mut env, &path, object);
        }
        let id = env["id"].as_str().map_or(id, str::to_owned);
        (id, Bytes::from(env.to_string()))
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(format!("cannot start the runtime: {e}")))?;
    let load = args.count > 1 || args.concurrency > 1;
    let all_ok = if load {
        rt.block_on(load_run(&args, target, plan, make_body))
    } else {
        rt.block_on(async {
            let mut conn = Conn::new(target);
            let (id, body) = make_body(args.id.as_deref());
            let mut all_ok = true;
            for _ in 0..args.repeat.max(1) {
                let attempts = deliver(&mut conn, &plan, &body).await;
                for (i, a) in attempts.iter().enumerate() {
                    if args.json {
                        outln!(
                            "{}",
                            json!({
                                "id": id, "attempt": i + 1, "status": a.status,
                                "latency_ms": ms(a.latency), "body": a.body,
                            })
                        );
                    } else {
                        outln!(
                            "{id}  attempt {}  {}  {:.1} ms  {}",
                            i + 1,
                            status_text(a.status),
                            ms(a.latency),
                            a.body
                        );
                    }
                }
                all_ok &= attempts
                    .last()
                    .and_then(|a| a.status)
                    .is_some_and(|s| (200..300).contains(&s));
            }
            all_ok
        })
    };
    Ok(if all_ok { 0 } else { 1 })
}

async fn load_run(
    args: &SendArgs,
    target: Target,
    plan: Plan,
    make_body: impl Fn(Option<&str>) -> (String, Bytes) + Send + Sync + 'static,
) -> bool {
    let total = args.count.max(1);
    let repeat = args.repeat.max(1);
    let rate = args.rate;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    // `run` bounds total × repeat; the vector grows past this first guess
    // only as attempts really happen.
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        usize::try_from(total.saturating_mul(repeat).min(1 << 20)).unwrap_or(0),
    )));
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    // The causes of the deliveries nothing answered, for the summary; and,
    // with --json, each delivery's record (its event id, last status,
    // attempts, the error), compact and at most MAX_RECORDS of them.
    let causes = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let keep_records = args.json;
    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let omitted = Arc::new(AtomicU64::new(0));
    let make_body = Arc::new(make_body);
    let plan = Arc::new(plan);
    let start = Instant::now();

    let progress = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                let d = done.load(Ordering::Relaxed);
                let width = 30u64;
                let filled = (d * width / total).min(width);
                eprint!(
                    "\r[{}{}] {d}/{total}",
                    "#".repeat(usize::try_from(filled).unwrap_or(0)),
                    "-".repeat(usize::try_from(width - filled).unwrap_or(0))
                );
                let _ = std::io::stderr().flush();
                if d >= total {
                    eprintln!();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });

    let workers: Vec<_> = (0..args.concurrency.clamp(1, 1024))
        .map(|_| {
            let (next, done, latencies, statuses, make_body, plan, target) = (
                next.clone(),
                done.clone(),
                latencies.clone(),
                statuses.clone(),
                make_body.clone(),
                plan.clone(),
                target.clone(),
            );
            let (causes, records, omitted) = (causes.clone(), records.clone(), omitted.clone());
            tokio::spawn(async move {
                let mut conn = Conn::new(target);
                loop {
                    let slot = next.fetch_add(1, Ordering::Relaxed);
                    if slot >= total {
                        break;
                    }
                    if let Some(rate) = rate {
                        // Event n starts n/rate seconds after the first.
                        let at = Duration::from_secs_f64(slot as f64 / rate as f64);
                        tokio::time::sleep_until((start + at).into()).await;
                    }
                    let (id, body) = make_body(None);
                    for _ in 0..repeat {
                        let attempts = deliver(&mut conn, &plan, &body).await;
                        if let Some(last) = attempts.last() {
                            let key = last
                                .status
                                .map_or_else(|| "error".to_owned(), |s| s.to_string());
                            if let Ok(mut m) = statuses.lock() {
                                *m.entry(key).or_insert(0) += 1;
                            }
                            let error = last.status.is_none().then(|| last.body.clone());
                            if let (Some(e), Ok(mut c)) = (&error, causes.lock()) {
                                *c.entry(e.clone()).or_insert(0) += 1;
                            }
                            if keep_records {
                                match records.lock() {
                                    Ok(mut r) if r.len() < MAX_RECORDS => r.push(Record {
                                        id: id.clone(),
                                        status: last.status,
                                        attempts: attempts.len(),
                                        error,
                                    }),
                                    _ => {
                                        omitted.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            if let Ok(mut l) = latencies.lock() {
                                l.extend(attempts.iter().map(|a| a.latency));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        ms(lat[i.min(lat.len() - 1)])
    };
    let statuses = statuses.lock().map(|s| s.clone()).unwrap_or_default();
    let records = records.lock().map(|r| r.clone()).unwrap_or_default();
    // The causes of the deliveries nothing answered, most frequent first.
    let causes = causes.lock().map(|c| c.clone()).unwrap_or_default();
    let mut causes: Vec<(String, u64)> = causes.into_iter().collect();
    causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let deliveries: u64 = statuses.values().sum();
    let rps = deliveries as f64 / elapsed.as_secs_f64().max(1e-9);
    let all_ok = statuses
        .iter()
        .all(|(k, _)| k.parse::<u16>().is_ok_and(|s| (200..300).contains(&s)));
    if args.json {
        outln!(
            "{}",
            json!({
                "deliveries": deliveries, "concurrency": args.concurrency, "rate": args.rate,
                "elapsed_s": elapsed.as_secs_f64(), "throughput_rps": rps,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
                "statuses": statuses,
                "errors": causes.iter().map(|(e, n)| json!({"error": e, "count": n})).collect::<Vec<_>>(),
                "records": records.iter().map(|r| json!({
                    "id": r.id, "status": r.status, "attempts": r.attempts, "error": r.error,
                })).collect::<Vec<_>>(),
                "records_omitted": omitted.load(Ordering::Relaxed),
            })
        );
    } else {
        let by_status: Vec<String> = statuses
            .iter()
            .map(|(k, v)| {
                if k == "error" && !causes.is_empty() {
                    // Say why, the three most frequent causes.
                    let why: Vec<String> = causes
                        .iter()
                        .take(3)
                        .map(|(e, n)| format!("{n} {}", plugipay_webhook_dispatch::printable(e)))
                        .collect();
                    let more = if causes.len() > 3 { "; …" } else { "" };
                    format!("{v} × error ({}{more})", why.join("; "))
                } else {
                    format!("{v} × {k}")
                }
            })
            .collect();
        outln!(
            "{deliveries} deliveries in {:.2} s with concurrency {}: {rps:.0} deliveries/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {}",
            elapsed.as_secs_f64(),
            args.concurrency,
            pct(0.50),
            pct(0.99),
            pct(1.0),
            by_status.join(", ")
        );
    }
    all_ok
}

/// `--set PATH=VALUE`: the dotted path and the value (JSON, or a string).
fn parse_set(text: &str) -> Result<(Vec<String>, Value), String> {
    let (path, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--set {text:?}: write it as PATH=VALUE"))?;
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("--set {text:?}: an empty segment in the path"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((path, value))
}

/// Sets `path` in `root` to `value`, creating objects on the way; a numeric
/// segment indexes an array.
fn set_path(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("--set: an empty path")?;
    let mut node = root;
    for segment in parents {
        node = match node {
            Value::Array(items) => {
                let i: usize = segment
                    .parse()
                    .map_err(|_| format!("--set: {segment:?} indexes an array"))?;
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("--set: index {i} is past the array's end"))?
            }
            Value::Object(map) => map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new())),
            other => {
                return Err(format!(
                    "--set: {segment:?} is inside {other}, not an object"
                ))
            }
        };
    }
    match node {
        Value::Array(items) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("--set: {last:?} indexes an array"))?;
            *items
                .get_mut(i)
                .ok_or_else(|| format!("--set: index {i} is past the array's end"))? = value;
        }
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        other => return Err(format!("--set: {last:?} is inside {other}, not an object")),
    }
    Ok(())
}

/// A fixture with `{{id}}` and `{{now}}` filled in and the overrides applied.
fn fill(
    template: &str,
    id: &str,
    now: i64,
    overrides: &[(Vec<String>, Value)],
) -> Result<Value, String> {
    let text = template
        .replace("{{id}}", id)
        .replace("{{now}}", &now.to_string());
    let mut env: Value = serde_json::from_str(&text)
        .map_err(|e| format!("--fixture: not JSON once filled in: {e}"))?;
    for (path, value) in overrides {
        set_path(&mut env, path, value.clone())?;
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_paths_create_objects_index_arrays_and_parse_json() {
        let mut v = json!({"data": {"object": {"lines": [{"amount": 1}]}}});
        for s in [
            "data.object.total=5000",
            "data.object.currency=usd",
            "data.object.lines.0.amount=7",
            "data.object.meta.new={\"a\":true}",
        ] {
            let (path, value) = parse_set(s).unwrap();
            set_path(&mut v, &path, value).unwrap();
        }
        assert_eq!(v["data"]["object"]["total"], 5000);
        assert_eq!(v["data"]["object"]["currency"], "usd");
        assert_eq!(v["data"]["object"]["lines"][0]["amount"], 7);
        assert_eq!(v["data"]["object"]["meta"]["new"]["a"], true);
        assert!(parse_set("noequals").is_err());
        let (path, value) = parse_set("data.object.total.x=1").unwrap();
        assert!(set_path(&mut v, &path, value).is_err());
    }
}
