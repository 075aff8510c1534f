//! `verify`: check a captured delivery.

use std::time::Duration;

use plugipay_webhook::ErrorCode;
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
    let verifier = secret
        .verifier()?
        .tolerance(Duration::from_secs(args.tolerance));
    let body = read_input(&args.file)?;
    let now = args.now.unwrap_or_else(|| verifier.now());
    match verifier.verify_at(body, Some(&args.header), now) {
        Ok(event) => {
            if args.json {
                println!(
                    "{}",
                    json!({
                        "ok": true,
                        "id": event.id(),
                        "type": event.event_type(),
                        "account_id": event.account_id(),
                        "occurred_at": event.occurred_at(),
                        "matched_secret": event.matched_secret(),
                    })
                );
            } else {
                println!("ok: {} {}", event.id(), event.event_type());
                println!("account:        {}", event.account_id().unwrap_or("-"));
                println!("occurred_at:    {}", event.occurred_at().unwrap_or("-"));
                println!(
                    "matched secret: #{} of {}",
                    event.matched_secret(),
                    verifier.secret_count()
                );
            }
            Ok(0)
        }
        Err(err) => {
            if args.json {
                println!(
                    "{}",
                    json!({"ok": false, "error": err.code().as_str(), "message": err.detail()})
                );
            } else {
                println!("{err}");
            }
            Ok(exit_code(err.code()))
        }
    }
}
