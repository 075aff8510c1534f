//! Why a delivery was refused, and the answer the contract assigns to it.

use std::fmt;

use http::StatusCode;

use crate::error::{ErrorCode, SignatureError};

/// `Content-Type` of every error response.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// `Retry-After` (seconds) of a `503 verifier_unavailable`.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why an adapter refused a delivery, with the status, body and header
/// fields the contract assigns to it (section 6 of `docs/behaviour.md`).
///
/// | rejection | status | body |
/// |---|---|---|
/// | [`VerifierMissing`](Rejection::VerifierMissing) | 500 | `{"error":"verifier_missing"}` |
/// | [`EndpointUnknown`](Rejection::EndpointUnknown) | 404 | `{"error":"endpoint_unknown"}` |
/// | [`VerifierUnavailable`](Rejection::VerifierUnavailable) | 503, `Retry-After: 5` | `{"error":"verifier_unavailable"}` |
/// | [`Signature`](Rejection::Signature) | 400 | `{"error":"signature_…"}` |
/// | [`PayloadTooLarge`](Rejection::PayloadTooLarge) | 413 | `{"error":"payload_too_large"}` |
/// | [`BodyTimeout`](Rejection::BodyTimeout) | 408 | `{"error":"body_timeout"}` |
/// | [`BodyReadFailed`](Rejection::BodyReadFailed) | 400 | `{"error":"body_read_failed"}` |
///
/// Every error response is `Content-Type: application/json` with exactly
/// [`body`](Rejection::body); [`headers`](Rejection::headers) lists every
/// field to set, `Connection: close` and `Retry-After` included.
///
/// ```
/// use plugipay_webhook::http::Rejection;
/// assert_eq!(Rejection::PayloadTooLarge.status(), 413);
/// assert_eq!(Rejection::PayloadTooLarge.body(), r#"{"error":"payload_too_large"}"#);
/// assert!(Rejection::PayloadTooLarge.closes_connection());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rejection {
    /// No verifier was reachable from the request (a wiring mistake).
    VerifierMissing,
    /// The verifier is chosen per request (per route or per tenant) and there
    /// is none for this one.
    EndpointUnknown,
    /// The verifier is looked up per request and the lookup failed (its
    /// database is down): Plugipay retries after `Retry-After`.
    VerifierUnavailable,
    /// The delivery failed verification.
    Signature(SignatureError),
    /// The body is larger than the verifier's limit.
    PayloadTooLarge,
    /// The body did not arrive within the read deadline.
    BodyTimeout,
    /// The body stream failed before it ended (the client went away, or sent
    /// fewer bytes than it declared). Nobody is usually left to read the answer.
    BodyReadFailed,
}

impl Rejection {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::VerifierMissing => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::EndpointUnknown => StatusCode::NOT_FOUND,
            Rejection::VerifierUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Signature(_) | Rejection::BodyReadFailed => StatusCode::BAD_REQUEST,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The error code, as it appears in the body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::VerifierMissing => "verifier_missing",
            Rejection::EndpointUnknown => "endpoint_unknown",
            Rejection::VerifierUnavailable => "verifier_unavailable",
            Rejection::Signature(e) => e.code().as_str(),
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::BodyReadFailed => "body_read_failed",
        }
    }

    /// The compact JSON body, `{"error":"<code>"}`, served as
    /// [`JSON_CONTENT_TYPE`].
    #[must_use]
    pub fn body(&self) -> &'static str {
        match self {
            Rejection::VerifierMissing => r#"{"error":"verifier_missing"}"#,
            Rejection::EndpointUnknown => r#"{"error":"endpoint_unknown"}"#,
            Rejection::VerifierUnavailable => r#"{"error":"verifier_unavailable"}"#,
            Rejection::Signature(e) => match e.code() {
                ErrorCode::SignatureMissing => r#"{"error":"signature_missing"}"#,
                ErrorCode::SignatureMalformed => r#"{"error":"signature_malformed"}"#,
                ErrorCode::SignatureStale => r#"{"error":"signature_stale"}"#,
                ErrorCode::SignatureInvalid => r#"{"error":"signature_invalid"}"#,
            },
            Rejection::PayloadTooLarge => r#"{"error":"payload_too_large"}"#,
            Rejection::BodyTimeout => r#"{"error":"body_timeout"}"#,
            Rejection::BodyReadFailed => r#"{"error":"body_read_failed"}"#,
        }
    }

    /// Whether the response must close the connection (`Connection: close`):
    /// after 408, 413 and a failed body stream the rest of the body is not
    /// read, so the connection cannot carry another request.
    #[must_use]
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Rejection::PayloadTooLarge | Rejection::BodyTimeout | Rejection::BodyReadFailed
        )
    }

    /// `Retry-After` in seconds, for `503 verifier_unavailable`.
    #[must_use]
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Rejection::VerifierUnavailable).then_some(RETRY_AFTER_SECS)
    }

    /// The header fields the response carries besides its status and body:
    /// `Content-Type: application/json`, `Connection: close` when
    /// [`closes_connection`](Rejection::closes_connection), `Retry-After`
    /// when [`retry_after`](Rejection::retry_after).
    ///
    /// ```
    /// use plugipay_webhook::http::Rejection;
    /// assert_eq!(
    ///     Rejection::BodyTimeout.headers(),
    ///     [("content-type", "application/json"), ("connection", "close")]
    /// );
    /// assert_eq!(
    ///     Rejection::VerifierUnavailable.headers(),
    ///     [("content-type", "application/json"), ("retry-after", "5")]
    /// );
    /// ```
    #[must_use]
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        const JSON: (&str, &str) = ("content-type", JSON_CONTENT_TYPE);
        const CLOSE: (&str, &str) = ("connection", "close");
        const RETRY: (&str, &str) = ("retry-after", "5");
        if self.closes_connection() {
            &[JSON, CLOSE]
        } else if self.retry_after().is_some() {
            &[JSON, RETRY]
        } else {
            &[JSON]
        }
    }

    /// The verification error, when that is what this is.
    #[must_use]
    pub fn signature_error(&self) -> Option<&SignatureError> {
        match self {
            Rejection::Signature(e) => Some(e),
            _ => None,
        }
    }

    /// The whole answer as an `http` 1.x response (the tower, axum and warp
    /// adapters serve it as is; others copy its parts).
    #[must_use]
    pub fn to_response(&self) -> http::Response<bytes::Bytes> {
        let mut resp = http::Response::new(bytes::Bytes::from_static(self.body().as_bytes()));
        *resp.status_mut() = self.status();
        for (name, value) in self.headers() {
            resp.headers_mut()
                .insert(*name, http::HeaderValue::from_static(value));
        }
        resp
    }
}

impl From<SignatureError> for Rejection {
    fn from(e: SignatureError) -> Self {
        Rejection::Signature(e)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::VerifierMissing => f.write_str(
                "verifier_missing: no plugipay_webhook::Verifier is configured for this route",
            ),
            Rejection::EndpointUnknown => f.write_str(
                "endpoint_unknown: no verifier is configured for this endpoint or tenant",
            ),
            Rejection::VerifierUnavailable => f.write_str(
                "verifier_unavailable: looking up this endpoint's verifier failed; retry later",
            ),
            Rejection::Signature(e) => fmt::Display::fmt(e, f),
            Rejection::PayloadTooLarge => {
                f.write_str("payload_too_large: the body exceeds the limit")
            }
            Rejection::BodyTimeout => {
                f.write_str("body_timeout: the body did not arrive within the read deadline")
            }
            Rejection::BodyReadFailed => {
                f.write_str("body_read_failed: the body stream ended with an error")
            }
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Rejection::Signature(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_body_is_its_code_and_status_is_typed() {
        for r in
            [
                Rejection::VerifierMissing,
                Rejection::EndpointUnknown,
                Rejection::VerifierUnavailable,
                Rejection::PayloadTooLarge,
                Rejection::BodyTimeout,
                Rejection::BodyReadFailed,
            ]
            .into_iter()
            .chain(ErrorCode::ALL.into_iter().map(|c| {
                Rejection::Signature(SignatureError::new(c, crate::error::Reason::NoSecret))
            }))
        {
            let v: serde_json::Value = serde_json::from_str(r.body()).unwrap();
            assert_eq!(v, serde_json::json!({ "error": r.code() }));
            let resp = r.to_response();
            assert_eq!(resp.status(), r.status());
            assert_eq!(resp.headers()["content-type"], "application/json");
        }
    }
}
