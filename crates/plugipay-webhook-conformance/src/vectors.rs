//! Loading the vector file.

use std::time::Duration;

use base64::Engine as _;
use plugipay_webhook::Verifier;
use serde::Deserialize;
use serde_json::Value;

/// The vector file, embedded at compile time so tests need no path.
const VECTORS_JSON: &str = include_str!("../../../tests/vectors/vectors.json");

/// The whole vector file.
#[derive(Debug, Clone)]
pub struct VectorFile {
    /// The instant every vector is judged at, unless it says otherwise.
    pub now: i64,
    /// The vectors.
    pub vectors: Vec<Vector>,
}

/// One request and the answer the contract requires.
#[derive(Debug, Clone)]
pub struct Vector {
    /// Unique name.
    pub name: String,
    /// The keyring.
    pub secrets: Vec<String>,
    /// Tolerance in seconds.
    pub tolerance: u64,
    /// The instant to judge at.
    pub now: i64,
    /// Every `X-Plugipay-Signature` field of the request, as raw bytes.
    pub headers: Vec<Vec<u8>>,
    /// The body.
    pub body: Vec<u8>,
    /// A `Content-Encoding` label to send with the body (never to be decoded).
    pub content_encoding: Option<String>,
    /// Whether the request can be sent over HTTP at all (a NUL byte in a
    /// header cannot).
    pub http: bool,
    /// The expected result.
    pub expect: Expect,
}

/// The expected result of a vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Verification succeeds with this event.
    Ok(ExpectedEvent),
    /// Verification fails with this code (`signature_…`).
    Error(String),
}

/// What the verified event must contain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectedEvent {
    /// `id`.
    pub id: String,
    /// `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `account_id`.
    pub account_id: Option<String>,
    /// `occurred_at`.
    pub occurred_at: Option<String>,
    /// `data.object` (JSON null when absent).
    pub object: Value,
    /// Position of the matching secret.
    pub matched_secret: usize,
}

impl Vector {
    /// A verifier configured as this vector requires, with its clock.
    #[must_use]
    pub fn verifier(&self) -> Verifier {
        verifier(&self.secrets, self.tolerance, self.now)
    }

    /// The single header value, when the request has exactly one field and
    /// it is text (what `verify_at(body, Option<&str>, now)` can express).
    #[must_use]
    pub fn single_header(&self) -> Option<Option<&str>> {
        match self.headers.as_slice() {
            [] => Some(None),
            [one] => std::str::from_utf8(one).ok().map(Some),
            _ => None,
        }
    }

    /// The expected status and error code over HTTP (the suite's handler
    /// answers `204` on success).
    #[must_use]
    pub fn expected_http(&self) -> (u16, Option<&str>) {
        match &self.expect {
            Expect::Ok(_) => (204, None),
            Expect::Error(code) => (400, Some(code.as_str())),
        }
    }
}

/// A verifier with these secrets and tolerance whose clock says `now`.
pub(crate) fn verifier(secrets: &[String], tolerance: u64, now: i64) -> Verifier {
    Verifier::from_secrets(secrets)
        .tolerance(Duration::from_secs(tolerance))
        .clock(move || now)
}

#[derive(Deserialize)]
struct RawFile {
    now: i64,
    default_tolerance: u64,
    vectors: Vec<RawVector>,
}

#[derive(Deserialize)]
struct RawVector {
    name: String,
    secrets: Vec<String>,
    tolerance: Option<u64>,
    now: Option<i64>,
    headers_b64: Vec<String>,
    body_b64: String,
    http: bool,
    content_encoding: Option<String>,
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawExpect {
    Ok(ExpectedEvent),
    Error(String),
}

/// Loads and decodes the vector file.
///
/// # Panics
/// When the embedded file is corrupt (a repository bug, caught by every test run).
#[must_use]
pub fn load_vectors() -> VectorFile {
    let raw: RawFile = serde_json::from_str(VECTORS_JSON).expect("vectors.json parses");
    let b64 = base64::engine::general_purpose::STANDARD;
    let vectors = raw
        .vectors
        .into_iter()
        .map(|v| Vector {
            headers: v
                .headers_b64
                .iter()
                .map(|h| b64.decode(h).expect("header base64"))
                .collect(),
            body: b64.decode(&v.body_b64).expect("body base64"),
            tolerance: v.tolerance.unwrap_or(raw.default_tolerance),
            now: v.now.unwrap_or(raw.now),
            name: v.name,
            secrets: v.secrets,
            http: v.http,
            content_encoding: v.content_encoding,
            expect: match v.expect {
                RawExpect::Ok(e) => Expect::Ok(e),
                RawExpect::Error(c) => Expect::Error(c),
            },
        })
        .collect();
    VectorFile {
        now: raw.now,
        vectors,
    }
}
