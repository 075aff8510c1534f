#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod event;
mod header;
pub mod http;
mod json;
mod limits;
mod report;
pub mod testing;
mod verifier;

pub use error::{ConfigError, ErrorCode, SignatureError};
pub use event::WebhookEvent;
pub use header::{SignatureHeader, SIGNATURE_HEADER};
pub use json::MAX_DEPTH;
pub use limits::{MAX_HEADER_LEN, MAX_SIGNATURES};
pub use report::REJECTION_SUMMARY_EVERY;
pub use verifier::{
    verify_webhook, Limits, RawBody, Verifier, DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT,
    DEFAULT_TOLERANCE, SECRET_ENV_VAR, SECRET_FILE_ENV_VAR,
};

/// Re-exported: the body type adapters hand over.
pub use bytes::Bytes;
/// Re-exported so `object()` and `raw()` callers name the same `Value` type.
pub use serde_json;

/// Not API: what the `scan` fuzz target drives. May change in any release.
#[doc(hidden)]
#[cfg(feature = "simd")]
pub mod __private {
    /// The envelope scan's outcome on `body` with the scalar (reference) and
    /// with the SIMD UTF-8 validator, each rendered with `Debug` (field
    /// locations, or the error with its reason and offset) to be compared.
    pub fn scan_both(body: &[u8]) -> (String, String) {
        use crate::json::{scan_envelope_with, Utf8};
        (
            format!("{:?}", scan_envelope_with(body, Utf8::Scalar)),
            format!("{:?}", scan_envelope_with(body, Utf8::Simd)),
        )
    }
}
