#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod error;
mod event;
mod header;
mod http;
mod json;
#[cfg(feature = "tokio")]
mod stream;
pub mod testing;
mod verifier;

pub use error::{ConfigError, ErrorCode, SignatureError};
pub use event::WebhookEvent;
pub use header::{SignatureHeader, MAX_HEADER_LEN, MAX_SIGNATURES, SIGNATURE_HEADER};
pub use http::{content_length, BodyCollector, Rejection, JSON_CONTENT_TYPE};
pub use json::MAX_DEPTH;
#[cfg(feature = "tokio")]
pub use stream::read_and_verify;
pub use verifier::{
    verify_webhook, Limits, RawBody, Verifier, DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT,
    DEFAULT_TOLERANCE, SECRET_ENV_VAR,
};

/// Re-exported: the body type adapters hand over.
pub use bytes::Bytes;
/// Re-exported so `object()` and `raw()` callers name the same `Value` type.
pub use serde_json;
