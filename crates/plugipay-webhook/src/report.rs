//! What the process says about rejected deliveries: the first one at once,
//! at `info`, with its code, tenant and likely causes; then at most one
//! summary per [`REJECTION_SUMMARY_EVERY`], with counts by code and tenant —
//! written when the minute ends (a timer, on a Tokio runtime), not with the
//! next rejection. A flood of forged requests cannot flood the logs, and a
//! wrong secret after a deploy is seen at once. Each rejection is also
//! logged at `debug` with the rule that failed (never a secret, a signature
//! or the body).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often at most the process writes its summary of rejections.
pub const REJECTION_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// At most this many tenants are named per code in a summary (the rest are
/// counted as "others").
const TENANTS_NAMED: usize = 8;

#[cfg(feature = "tokio")]
type Instant = tokio::time::Instant;
#[cfg(not(feature = "tokio"))]
type Instant = std::time::Instant;

/// The rejections of the current window.
struct Window {
    started: Instant,
    /// (code, tenant or "") → count.
    counts: BTreeMap<(&'static str, String), u64>,
}

/// `None`: quiet (the next rejection is logged at once).
static WINDOW: Mutex<Option<Window>> = Mutex::new(None);

fn likely_causes(code: &str) -> &'static str {
    match code {
        "signature_missing" => {
            "no X-Plugipay-Signature header (not from Plugipay, or a proxy dropping it), or no secret configured"
        }
        "signature_malformed" => "a header not written by Plugipay, or mangled by a proxy",
        "signature_stale" => "this server's clock is off, or a replayed delivery",
        "signature_invalid" => {
            "a wrong secret (test vs live, another endpoint's, a rotated one), or the body changed \
             before verification (middleware re-serialising or decompressing it, a proxy)"
        }
        "endpoint_unknown" => "a tenant or route this receiver does not know (a typo in the URL, a removed tenant)",
        "verifier_unavailable" => "the tenant's verifier could not be looked up (its database is down or slow)",
        "payload_too_large" => "a body over the limit",
        "body_timeout" => "a body that did not arrive within the read deadline (a slow or stalled client)",
        "body_read_failed" => "the connection failed while the body was read",
        "verifier_missing" => "no verifier configured for this route (a wiring mistake)",
        _ => "see docs/troubleshooting.md",
    }
}

fn now() -> Instant {
    Instant::now()
}

/// Notes one rejected delivery.
pub(crate) fn rejected(code: &'static str, tenant: Option<&str>) {
    let Ok(mut window) = WINDOW.lock() else {
        return;
    };
    // A window whose minute passed without its timer (no runtime): flush now.
    if window
        .as_ref()
        .is_some_and(|w| now().duration_since(w.started) >= REJECTION_SUMMARY_EVERY)
    {
        flush_locked(&mut window);
    }
    match window.as_mut() {
        Some(w) => {
            *w.counts
                .entry((code, tenant.unwrap_or_default().to_owned()))
                .or_default() += 1;
        }
        None => {
            tracing::info!(
                code,
                tenant,
                "plugipay webhook rejected a delivery: {code}{} — likely {}; further rejections are \
                 summarised at most once a minute (each at debug level); see docs/troubleshooting.md",
                tenant.map(|t| format!(" for tenant {t}")).unwrap_or_default(),
                likely_causes(code)
            );
            *window = Some(Window {
                started: now(),
                counts: BTreeMap::new(),
            });
            schedule_flush();
        }
    }
}

/// Writes the summary when the window ends.
fn schedule_flush() {
    #[cfg(feature = "tokio")]
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async {
            tokio::time::sleep(REJECTION_SUMMARY_EVERY).await;
            if let Ok(mut window) = WINDOW.lock() {
                if window
                    .as_ref()
                    .is_some_and(|w| now().duration_since(w.started) >= REJECTION_SUMMARY_EVERY)
                {
                    flush_locked(&mut window);
                }
            }
        });
    }
}

/// Writes the window's summary and opens the next window — or, when
/// nothing was rejected in it, goes quiet.
fn flush_locked(window: &mut Option<Window>) {
    let Some(w) = window.take() else {
        return;
    };
    if w.counts.is_empty() {
        return;
    }
    let total: u64 = w.counts.values().sum();
    let mut by_code: BTreeMap<&'static str, Vec<(&str, u64)>> = BTreeMap::new();
    for ((code, tenant), n) in &w.counts {
        by_code.entry(code).or_default().push((tenant.as_str(), *n));
    }
    let parts: Vec<String> = by_code
        .iter()
        .map(|(code, tenants)| {
            let n: u64 = tenants.iter().map(|(_, n)| n).sum();
            let mut named: Vec<&(&str, u64)> =
                tenants.iter().filter(|(t, _)| !t.is_empty()).collect();
            named.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut who: Vec<String> = named
                .iter()
                .take(TENANTS_NAMED)
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            let others: u64 = named
                .iter()
                .skip(TENANTS_NAMED)
                .map(|(_, n)| n)
                .sum::<u64>()
                + tenants
                    .iter()
                    .filter(|(t, _)| t.is_empty())
                    .map(|(_, n)| n)
                    .sum::<u64>();
            if !who.is_empty() && others > 0 {
                who.push(format!("others {others}"));
            }
            let who = if who.is_empty() {
                String::new()
            } else {
                format!(" [{}]", who.join(", "))
            };
            format!("{code}: {n}{who} ({})", likely_causes(code))
        })
        .collect();
    tracing::info!(
        rejected = total,
        "plugipay webhook: {total} deliveries rejected in the last {} s — {}",
        REJECTION_SUMMARY_EVERY.as_secs(),
        parts.join("; ")
    );
    *window = Some(Window {
        started: now(),
        counts: BTreeMap::new(),
    });
    schedule_flush();
}
