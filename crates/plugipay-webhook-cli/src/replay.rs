//! `replay`: send deliveries saved by `listen --save` again, byte-exact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use plugipay_webhook::testing;
use serde_json::{json, Value};

use crate::client::{Conn, Target, TlsArgs};
use crate::secret::SecretArgs;
use crate::Failure;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Saved deliveries: files, or directories (their `*.json` files, in name
    /// order — the order `listen --save` received them in).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Where to send them.
    #[arg(long, value_name = "URL")]
    to: String,

    /// Keep each delivery's original signature header instead of signing
    /// afresh: reproduces a stale or forged delivery exactly.
    #[arg(long)]
    as_is: bool,

    /// Send the captures `listen` rejected too (a bad signature, a stale
    /// timestamp, …) — signed afresh they would reach the application as
    /// valid events, so by default they are left out.
    #[arg(long)]
    include_rejected: bool,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    timeout: u64,

    /// One JSON line per delivery.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    tls: TlsArgs,
}

/// One saved delivery: its body bytes, signature header values, and what
/// `listen` made of it (`verified`, an error code; `None` for captures of
/// an earlier version, which recorded no verdict).
struct Saved {
    path: PathBuf,
    body: Bytes,
    signatures: Vec<String>,
    verdict: Option<String>,
}

fn load(path: &Path) -> Result<Saved, Failure> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |why: &str| Failure::io(format!("{}: {why}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
    let record: Value =
        serde_json::from_slice(&text).map_err(|_| bad("not a delivery saved by listen --save"))?;
    let body = record["body_b64"]
        .as_str()
        .and_then(|b| b64.decode(b).ok())
        .ok_or_else(|| bad("no body_b64"))?;
    let signatures = record["headers"]
        .as_array()
        .map(|headers| {
            headers
                .iter()
                .filter(|h| {
                    h["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(plugipay_webhook::SIGNATURE_HEADER))
                })
                .filter_map(|h| h["value_b64"].as_str().and_then(|v| b64.decode(v).ok()))
                .filter_map(|v| String::from_utf8(v).ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Saved {
        path: path.to_owned(),
        body: Bytes::from(body),
        signatures,
        verdict: record["verdict"].as_str().map(str::to_owned),
    })
}

/// The files to replay, in order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Failure::io(format!("{}: {e}", path.display())))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

pub(crate) fn run(secret: &SecretArgs, args: ReplayArgs) -> Result<u8, Failure> {
    let secrets = if args.as_is {
        Vec::new()
    } else {
        secret.secrets()?
    };
    let target = Target::parse(&args.to, &args.tls)?;
    let all = files(&args.paths)?
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    // What `listen` rejected is not sent unless asked: signed afresh, a
    // forged or tampered capture would reach the application as valid.
    let (deliveries, left_out): (Vec<Saved>, Vec<Saved>) = all
        .into_iter()
        .partition(|s| args.include_rejected || s.verdict.as_deref() == Some("verified"));
    if !left_out.is_empty() {
        let mut why: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for s in &left_out {
            *why.entry(s.verdict.as_deref().unwrap_or("no verdict recorded"))
                .or_default() += 1;
        }
        let why: Vec<String> = why.iter().map(|(w, n)| format!("{n} {w}")).collect();
        eprintln!(
            "left out {} capture{} that `listen` did not verify ({}): pass --include-rejected to send them",
            left_out.len(),
            if left_out.len() == 1 { "" } else { "s" },
            why.join(", ")
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::io(format!("cannot start the runtime: {e}")))?;
    let all_ok = rt.block_on(async {
        let mut conn = Conn::new(target);
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let mut all_ok = true;
        for saved in &deliveries {
            let signatures = if args.as_is {
                saved.signatures.clone()
            } else {
                vec![testing::sign_header_multi(&refs, crate::time::now(), &saved.body)]
            };
            let headers: Vec<(String, String)> = signatures
                .into_iter()
                .map(|s| (plugipay_webhook::SIGNATURE_HEADER.to_owned(), s))
                .collect();
            let start = Instant::now();
            let result = conn
                .post(saved.body.clone(), &headers, Duration::from_secs(args.timeout.max(1)))
                .await;
            let latency = crate::send::ms(start.elapsed());
            let (status, answer) = match result {
                Ok((status, body)) => (Some(status.as_u16()), String::from_utf8_lossy(&body).into_owned()),
                Err(e) => (None, e),
            };
            all_ok &= status.is_some_and(|s| (200..300).contains(&s));
            if args.json {
                crate::out(
                    &json!({"file": saved.path, "status": status, "latency_ms": latency, "body": answer})
                        .to_string(),
                );
            } else {
                crate::out(&format!(
                    "{}  {}  {latency:.1} ms  {answer}",
                    saved.path.display(),
                    status.map_or_else(|| "no answer".to_owned(), |s| s.to_string())
                ));
            }
        }
        all_ok
    });
    Ok(if all_ok { 0 } else { 1 })
}
