//! What every framework adapter answers (SPEC.md section 6), decided once.
//!
//! Adapters do not map errors to statuses themselves: they turn a
//! [`Rejection`] into their framework's response with [`Rejection::status`],
//! [`Rejection::body`] and [`Rejection::closes_connection`], and collect the
//! body with [`BodyCollector`], so the five frameworks cannot drift apart.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::error::{ErrorCode, SignatureError};

/// `Content-Type` of every error response.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Why an adapter refused a delivery, with the status and body the contract
/// assigns to it.
///
/// | rejection | status | body |
/// |---|---|---|
/// | [`VerifierMissing`](Rejection::VerifierMissing) | 500 | `{"error":"verifier_missing"}` |
/// | [`Signature`](Rejection::Signature) | 400 | `{"error":"signature_…"}` |
/// | [`PayloadTooLarge`](Rejection::PayloadTooLarge) | 413 | `{"error":"payload_too_large"}` |
/// | [`BodyTimeout`](Rejection::BodyTimeout) | 408 | `{"error":"body_timeout"}` |
/// | [`BodyReadFailed`](Rejection::BodyReadFailed) | 400 | `{"error":"body_read_failed"}` |
///
/// ```
/// use plugipay_webhook::Rejection;
/// assert_eq!(Rejection::PayloadTooLarge.status(), 413);
/// assert_eq!(Rejection::PayloadTooLarge.body(), r#"{"error":"payload_too_large"}"#);
/// assert!(Rejection::PayloadTooLarge.closes_connection());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rejection {
    /// No verifier was reachable from the request (a wiring mistake).
    VerifierMissing,
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
    /// The HTTP status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Rejection::VerifierMissing => 500,
            Rejection::Signature(_) | Rejection::BodyReadFailed => 400,
            Rejection::PayloadTooLarge => 413,
            Rejection::BodyTimeout => 408,
        }
    }

    /// The error code, as it appears in the body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::VerifierMissing => "verifier_missing",
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
    /// after 408 and 413 the rest of the body is not read, so the connection
    /// cannot carry another request.
    #[must_use]
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Rejection::PayloadTooLarge | Rejection::BodyTimeout | Rejection::BodyReadFailed
        )
    }

    /// The header fields the response carries, in addition to its status and
    /// body: `Content-Type: application/json`, and `Connection: close` when
    /// [`closes_connection`](Rejection::closes_connection).
    ///
    /// ```
    /// use plugipay_webhook::Rejection;
    /// assert_eq!(
    ///     Rejection::BodyTimeout.headers(),
    ///     [("content-type", "application/json"), ("connection", "close")]
    /// );
    /// ```
    #[must_use]
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        const JSON: (&str, &str) = ("content-type", JSON_CONTENT_TYPE);
        const CLOSE: (&str, &str) = ("connection", "close");
        if self.closes_connection() {
            &[JSON, CLOSE]
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

/// Parses a request's `Content-Length` value (raw header bytes) the one way
/// every adapter uses: ASCII digits, optional surrounding whitespace; anything
/// else is `None` (the HTTP server has rejected such requests already).
///
/// ```
/// use plugipay_webhook::content_length;
/// assert_eq!(content_length(b" 1024 "), Some(1024));
/// assert_eq!(content_length(b"-1"), None);
/// ```
#[must_use]
pub fn content_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Collects a body from a framework's chunk stream, never holding more than
/// the limit: the chunk that would cross it is refused with
/// [`Rejection::PayloadTooLarge`]. A body that arrives as one chunk is kept
/// without a copy.
///
/// ```
/// use bytes::Bytes;
/// use plugipay_webhook::{BodyCollector, Rejection};
///
/// let mut body = BodyCollector::new(8, None);
/// body.push(Bytes::from_static(b"1234"))?;
/// body.push(Bytes::from_static(b"5678"))?; // exactly the limit: fine
/// assert!(matches!(body.push(Bytes::from_static(b"9")), Err(Rejection::PayloadTooLarge)));
/// # Ok::<(), Rejection>(())
/// ```
///
/// Its `Debug` shows the limit and the length collected, never the bytes.
pub struct BodyCollector {
    limit: usize,
    hint: usize,
    len: usize,
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl std::fmt::Debug for BodyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCollector")
            .field("limit", &self.limit)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl BodyCollector {
    /// A collector for at most `limit` bytes; `content_length`, when the
    /// request declared one (already checked against the limit), sizes the
    /// buffer.
    #[must_use]
    pub fn new(limit: usize, content_length: Option<u64>) -> BodyCollector {
        let hint = content_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(limit);
        BodyCollector {
            limit,
            hint,
            len: 0,
            first: None,
            rest: None,
        }
    }

    /// Bytes collected so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was collected yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a chunk; `Err(PayloadTooLarge)` when it would cross the limit.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), Rejection> {
        self.grow(chunk.len())?;
        if chunk.is_empty() {
            return Ok(());
        }
        if self.first.is_none() && self.rest.is_none() {
            self.first = Some(chunk);
        } else {
            self.buffer().extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// The copy buffer, created on the second chunk (or the first borrowed
    /// one) with room for the declared length.
    fn buffer(&mut self) -> &mut BytesMut {
        let hint = self.hint.max(self.len);
        let first = self.first.take();
        let buf = self
            .rest
            .get_or_insert_with(|| BytesMut::with_capacity(hint));
        if let Some(first) = first {
            buf.extend_from_slice(&first);
        }
        buf
    }

    /// Adds a borrowed chunk (copied); `Err(PayloadTooLarge)` when it would
    /// cross the limit.
    pub fn push_slice(&mut self, chunk: &[u8]) -> Result<(), Rejection> {
        self.grow(chunk.len())?;
        self.buffer().extend_from_slice(chunk);
        Ok(())
    }

    fn grow(&mut self, by: usize) -> Result<(), Rejection> {
        match self.len.checked_add(by) {
            Some(n) if n <= self.limit => {
                self.len = n;
                Ok(())
            }
            _ => {
                tracing::debug!(
                    limit = self.limit,
                    "plugipay webhook rejected: body too large"
                );
                Err(Rejection::PayloadTooLarge)
            }
        }
    }

    /// The collected body.
    #[must_use]
    pub fn finish(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(buf)) => buf.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_keeps_order_across_chunk_kinds() {
        let mut c = BodyCollector::new(100, Some(9));
        c.push(Bytes::from_static(b"abc")).unwrap();
        c.push_slice(b"def").unwrap();
        c.push(Bytes::from_static(b"")).unwrap();
        c.push(Bytes::from_static(b"ghi")).unwrap();
        assert_eq!(c.len(), 9);
        assert_eq!(&c.finish()[..], b"abcdefghi");
    }

    #[test]
    fn single_chunk_is_not_copied() {
        let chunk = Bytes::from(vec![7u8; 64]);
        let ptr = chunk.as_ptr();
        let mut c = BodyCollector::new(64, None);
        c.push(chunk).unwrap();
        assert_eq!(c.finish().as_ptr(), ptr);
    }

    #[test]
    fn every_rejection_body_is_its_code() {
        for r in
            [
                Rejection::VerifierMissing,
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
        }
    }
}
