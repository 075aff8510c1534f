//! Signing helpers for testing webhook handlers, the way Plugipay signs.
//!
//! These compute exactly what Plugipay sends —
//! `t=<t>,v1=hex(HMAC-SHA256(secret, "<t>." ++ body))` — so a test can build a
//! delivery, send it through the real handler and assert what happened, as the
//! Python SDK's "Testing your handler" section does.
//!
//! ```
//! use plugipay_webhook::testing::TestDelivery;
//! use plugipay_webhook::Verifier;
//!
//! let delivery = TestDelivery::new("whsec_test", "plugipay.checkout_session.succeeded.v1")
//!     .object(serde_json::json!({"id": "cs_1"}));
//! // Send `delivery.body()` with header `X-Plugipay-Signature: delivery.header()` to
//! // your route, or verify directly:
//! let event = delivery.verify_with(&Verifier::new("whsec_test")).unwrap();
//! assert_eq!(event.object()["id"], "cs_1");
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{SignatureError, Verifier, WebhookEvent};

/// `hex(HMAC-SHA256(secret, "<timestamp>." ++ body))`, lowercase: the `v1`
/// value Plugipay would send.
///
/// ```
/// let sig = plugipay_webhook::testing::sign("whsec_test", 1_700_000_000, b"{}");
/// assert_eq!(sig.len(), 64);
/// ```
#[must_use]
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    to_hex(&mac.finalize().into_bytes())
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// The full `X-Plugipay-Signature` value, `t=<timestamp>,v1=<signature>`.
///
/// ```
/// let h = plugipay_webhook::testing::sign_header("whsec_test", 17, b"{}");
/// assert!(h.starts_with("t=17,v1="));
/// ```
#[must_use]
pub fn sign_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// [`sign_header`] at the current system time.
#[must_use]
pub fn sign_header_now(secret: &str, body: &[u8]) -> String {
    sign_header(secret, unix_now(), body)
}

/// A header signed with several secrets at once (one `v1` each), as Plugipay
/// sends during a secret rotation.
///
/// ```
/// let h = plugipay_webhook::testing::sign_header_multi(&["whsec_a", "whsec_b"], 17, b"{}");
/// assert_eq!(h.matches("v1=").count(), 2);
/// ```
#[must_use]
pub fn sign_header_multi(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut h = format!("t={timestamp}");
    for s in secrets {
        h.push_str(",v1=");
        h.push_str(&sign(s, timestamp, body));
    }
    h
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `evt_test_<time><pid><counter>`: unique within a process and, in practice,
/// across the processes of a test run.
fn unique_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "evt_test_{nanos:x}{:x}{:04}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// A signed test delivery: an envelope in Plugipay's shape and its header.
///
/// Defaults: a fresh unique id (`evt_test_…`), `account_id` `acc_test`,
/// `occurred_at` now, an empty object, signed at the current time.
#[derive(Clone)]
pub struct TestDelivery {
    secret: String,
    id: String,
    event_type: String,
    account_id: Option<String>,
    occurred_at: Option<String>,
    object: Value,
    timestamp: Option<i64>,
    body: Option<Bytes>,
}

impl std::fmt::Debug for TestDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDelivery")
            .field("secret", &"REDACTED")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl TestDelivery {
    /// A delivery of `event_type`, signed with `secret`.
    pub fn new(secret: impl Into<String>, event_type: impl Into<String>) -> TestDelivery {
        TestDelivery {
            secret: secret.into(),
            id: unique_id(),
            event_type: event_type.into(),
            account_id: Some("acc_test".to_owned()),
            occurred_at: Some("2026-01-01T00:00:00Z".to_owned()),
            object: json!({}),
            timestamp: None,
            body: None,
        }
    }

    /// Sets the event id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets (or, with `None`, omits) `account_id`.
    #[must_use]
    pub fn account_id(mut self, account_id: Option<&str>) -> Self {
        self.account_id = account_id.map(str::to_owned);
        self
    }

    /// Sets (or, with `None`, omits) `occurred_at`.
    #[must_use]
    pub fn occurred_at(mut self, occurred_at: Option<&str>) -> Self {
        self.occurred_at = occurred_at.map(str::to_owned);
        self
    }

    /// Sets `data.object`.
    #[must_use]
    pub fn object(mut self, object: Value) -> Self {
        self.object = object;
        self
    }

    /// Signs at this timestamp instead of now (e.g. `now - 600` for a stale one).
    #[must_use]
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Replaces the generated envelope with these exact bytes (still signed).
    #[must_use]
    pub fn raw_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The event id.
    #[must_use]
    pub fn event_id(&self) -> &str {
        &self.id
    }

    /// The body bytes to send.
    #[must_use]
    pub fn body(&self) -> Bytes {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let mut env = serde_json::Map::new();
        env.insert("id".into(), Value::String(self.id.clone()));
        env.insert("type".into(), Value::String(self.event_type.clone()));
        if let Some(a) = &self.account_id {
            env.insert("account_id".into(), Value::String(a.clone()));
        }
        if let Some(o) = &self.occurred_at {
            env.insert("occurred_at".into(), Value::String(o.clone()));
        }
        env.insert("data".into(), json!({ "object": self.object }));
        Bytes::from(Value::Object(env).to_string())
    }

    /// The timestamp the header is signed at.
    #[must_use]
    pub fn signed_at(&self) -> i64 {
        self.timestamp.unwrap_or_else(unix_now)
    }

    /// The `X-Plugipay-Signature` value for [`body`](TestDelivery::body).
    #[must_use]
    pub fn header(&self) -> String {
        sign_header(&self.secret, self.signed_at(), &self.body())
    }

    /// Body and header together, signed at one instant.
    #[must_use]
    pub fn into_parts(self) -> (Bytes, String) {
        let body = self.body();
        let header = sign_header(&self.secret, self.signed_at(), &body);
        (body, header)
    }

    /// This delivery as an `http` 1.x `POST` to `uri`, for a framework's
    /// own test tools (tower's and axum's `oneshot`): the body (any body
    /// type made from [`Bytes`], such as `Full<Bytes>` or `axum::body::Body`),
    /// the signature header and `Content-Type: application/json`.
    ///
    /// ```
    /// use plugipay_webhook::testing::TestDelivery;
    /// let req: http::Request<bytes::Bytes> =
    ///     TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1").into_request("/webhooks/plugipay");
    /// assert!(req.headers().contains_key("x-plugipay-signature"));
    /// ```
    ///
    /// # Panics
    /// When `uri` is not a valid URI (a mistake in the test itself).
    #[must_use]
    pub fn into_request<B: From<Bytes>>(self, uri: &str) -> http::Request<B> {
        let (body, header) = self.into_parts();
        http::Request::post(uri)
            .header(crate::SIGNATURE_HEADER, header)
            .header("content-type", "application/json")
            .body(B::from(body))
            .expect("a valid request URI")
    }

    /// Verifies this delivery with `verifier` (its own clock).
    pub fn verify_with(&self, verifier: &Verifier) -> Result<WebhookEvent, SignatureError> {
        let (body, header) = self.clone().into_parts();
        verifier.verify(body, Some(&header))
    }

    /// Signs the delivery and verifies it with `verifier` as the secret of
    /// tenant `tenant` — the event a per-tenant verifier source would hand
    /// over ([`WebhookEvent::tenant`] is `tenant`).
    ///
    /// ```
    /// use plugipay_webhook::{testing::TestDelivery, Verifier};
    /// let event = TestDelivery::new("whsec_acme", "plugipay.invoice.paid.v1")
    ///     .verify_for_tenant(&Verifier::new("whsec_acme"), "acme")
    ///     .unwrap();
    /// assert_eq!(event.tenant(), Some("acme"));
    /// ```
    pub fn verify_for_tenant(
        &self,
        verifier: &Verifier,
        tenant: &str,
    ) -> Result<WebhookEvent, SignatureError> {
        self.verify_with(verifier)
            .map(|event| event.with_tenant(Some(tenant.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's Python recipe, computed by hand for a fixed input
    /// (python3: hmac.new(b"whsec_test_xxx", b"1700000000." + b'{}', sha256)).
    #[test]
    fn sign_matches_python_recipe() {
        assert_eq!(
            sign("whsec_test_xxx", 1_700_000_000, b"{}"),
            "8eddda4461d8a1b2e36d81df34fe56aafde6a17e21da581cc5df564ba55e347e"
        );
    }

    #[test]
    fn ids_are_unique() {
        let a = TestDelivery::new("s", "t");
        let b = TestDelivery::new("s", "t");
        assert_ne!(a.event_id(), b.event_id());
    }
}
