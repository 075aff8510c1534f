//! `verify`: check a captured delivery.

use std::time::Duration;

use plugipay_webhook::{ErrorCode, SignatureError, SignatureHeader, Verifier, WebhookEvent};
use serde_json::json;

use crate::secret::SecretArgs;
use crate::{read_input, Failure, VerifyArgs};

/// The exit code for each verification error code.
pub(crate) fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::SignatureMissing => 10,
        ErrorCode::SignatureMalformed => 11,
        ErrorCode::SignatureStale => 12,
        ErrorCode::SignatureInvalid => 13,
        // Future codes: still distinct from success, usage and set-up errors.
        _ => 19,
    }
}

pub(crate) fn run(secret: &SecretArgs, args: &VerifyArgs) -> Result<u8, Failure> {
    let secrets = secret.secrets()?;
    let verifier = Verifier::from_secrets(&secrets).tolerance(Duration::from_secs(args.tolerance));
    let body = read_input(&args.file)?;
    let now = args.now.unwrap_or_else(|| verifier.now());
    let result = verifier.verify_at(body.as_slice(), Some(&args.header), now);
    let explained = if args.explain {
        explain(&secrets, &args.header, &body, &result)
    } else {
        Vec::new()
    };
    match result {
        Ok(event) => {
            if args.json {
                outln!(
                    "{}",
                    json!({
                        "ok": true,
                        "id": event.id(),
                        "type": event.event_type(),
                        "account_id": event.account_id(),
                        "occurred_at": event.occurred_at(),
                        "matched_secret": event.matched_secret(),
                        "explain": explained,
                    })
                );
            } else {
                outln!("ok: {} {}", event.id(), event.event_type());
                outln!("account:        {}", event.account_id().unwrap_or("-"));
                outln!("occurred_at:    {}", event.occurred_at().unwrap_or("-"));
                outln!(
                    "matched secret: #{} of {}",
                    event.matched_secret(),
                    verifier.secret_count()
                );
                for line in &explained {
                    outln!("explain: {line}");
                }
            }
            Ok(0)
        }
        Err(err) => {
            if args.json {
                outln!(
                    "{}",
                    json!({"ok": false, "error": err.code().as_str(), "message": err.detail(), "explain": explained})
                );
            } else {
                outln!("{err}");
                for line in &explained {
                    outln!("explain: {line}");
                }
            }
            Ok(exit_code(err.code()))
        }
    }
}

/// `--explain`: tries the usual mistakes and says which one would have made
/// the delivery verify — naming secrets by position, never printing a secret
/// or a MAC.
pub(crate) fn explain(
    secrets: &[String],
    header: &str,
    body: &[u8],
    result: &Result<WebhookEvent, SignatureError>,
) -> Vec<String> {
    let mut found = Vec::new();
    let parsed = SignatureHeader::from_values([header.as_bytes()]);
    let t = parsed.as_ref().map(SignatureHeader::timestamp).ok();
    match result {
        Ok(event) if event.matched_secret() > 0 => found.push(format!(
            "it verified with secret #{} of {}, not the first: a receiver holding only the first \
             secret answers signature_invalid — it is configured with the wrong one",
            event.matched_secret(),
            secrets.len()
        )),
        Ok(_) => found.push("nothing to explain: it verified with the first secret".to_owned()),
        Err(err) if err.code() == ErrorCode::SignatureStale => {
            if let Some(t) = t.filter(|t| *t > 100_000_000_000) {
                found.push(format!(
                    "t={t} has {} digits: it looks like milliseconds; Plugipay's t is Unix seconds",
                    t.to_string().len()
                ));
            } else {
                found.push(
                    "the signature matched but the timestamp is outside the tolerance: this \
                     machine's clock, or the capture's age (judge an old capture with --now T)"
                        .to_owned(),
                );
            }
        }
        Err(err) if err.code() == ErrorCode::SignatureInvalid => {
            found.extend(explain_invalid(secrets, header, body, t));
            if found.is_empty() {
                found.push(
                    "no usual mistake explains it: the secret is not any of those given (test \
                     vs live? another endpoint's?), or the body was changed in another way"
                        .to_owned(),
                );
            }
        }
        Err(_) => found.push(
            "the header itself is the problem (see the message): --explain looks into \
             signature_invalid and signature_stale"
                .to_owned(),
        ),
    }
    found
}

/// Which altered body, secret or timestamp would have matched.
fn explain_invalid(secrets: &[String], header: &str, body: &[u8], t: Option<i64>) -> Vec<String> {
    let Some(t) = t else { return Vec::new() };
    // Would this header verify `candidate` under one of the secrets (at its
    // own time, so freshness does not hide the answer)?
    let matches = |candidate: &[u8], header: &str| -> Option<usize> {
        secrets.iter().position(|s| {
            Verifier::new(s)
                .tolerance(Duration::from_secs(u64::MAX / 4))
                .verify_at(candidate, Some(header), t)
                .is_ok()
        })
    };
    let mut found = Vec::new();
    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(stripped) = body
        .strip_suffix(b"\r\n")
        .or_else(|| body.strip_suffix(b"\n"))
    {
        bodies.push((
            "a trailing newline was added to the body after signing (an editor, `echo`, a logger)",
            stripped.to_vec(),
        ));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let minified = minify(body);
        if minified != body {
            bodies.push((
                "the body was pretty-printed or re-indented after signing: Plugipay signs the compact bytes",
                minified,
            ));
        }
        let sorted = value.to_string().into_bytes();
        if sorted != body {
            bodies.push((
                "the body was re-serialised with its keys reordered after signing (a framework's JSON extractor)",
                sorted,
            ));
        }
    }
    // A later alteration that yields the same bytes as an earlier one (a
    // minified body with a trailing newline dropped) says nothing new.
    let mut seen: Vec<&[u8]> = Vec::new();
    for (why, candidate) in &bodies {
        if seen.contains(&candidate.as_slice()) {
            continue;
        }
        seen.push(candidate);
        if let Some(k) = matches(candidate, header) {
            found.push(format!(
                "{why} — the unaltered body verifies with secret #{k}"
            ));
        }
    }
    // The signature made with a timestamp in milliseconds, or seconds
    // written as milliseconds.
    for (why, other) in [
        (
            "the sender signed t in seconds but the header carries milliseconds",
            t / 1000,
        ),
        (
            "the sender signed a timestamp in milliseconds",
            t.saturating_mul(1000),
        ),
    ] {
        let header = header.replacen(&format!("t={t}"), &format!("t={other}"), 1);
        if matches(body, &header).is_some() {
            found.push(why.to_owned());
        }
    }
    found
}

/// JSON with the whitespace outside strings removed, keys in their order.
fn minify(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out
}
