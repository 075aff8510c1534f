//! What happened to a delivery, and how to answer it.

use plugipay_webhook::WebhookEvent;

/// `Retry-After` sent with 409 and 503, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// What happened to a delivery, and how to answer it (`docs/dedup.md`).
///
/// | outcome | status | body |
/// |---|---|---|
/// | `Handled`, `Duplicate`, `Unknown` | 204 | empty |
/// | `InProgress` | 409, `Retry-After: 5` | `{"error":"in_progress"}` |
/// | `HandlerFailed` | 500 | `{"error":"handler_failed"}` |
/// | `StoreUnavailable` | 503, `Retry-After: 5` | `{"error":"store_unavailable"}` |
/// | `Unstorable` | 400 | `{"error":"nul_in_text"}` |
/// | `Stored` (inbox) | 202 | empty |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler ran and succeeded; the event is recorded as done.
    Handled,
    /// The event was already handled: acknowledged, handler not run.
    Duplicate,
    /// No handler for this type: logged and acknowledged so Plugipay stops retrying.
    Unknown,
    /// Another delivery of the same event is being handled right now.
    InProgress,
    /// The handler failed, panicked or timed out; the claim was released so
    /// the retry runs it again.
    HandlerFailed,
    /// The de-duplication store (or the inbox) could not be reached.
    StoreUnavailable,
    /// Stored in the durable inbox (now or before): acknowledged with 202,
    /// processed by the inbox's workers.
    Stored,
    /// A text the store keys or keeps the event by — its id, type, tenant,
    /// account id, `occurred_at`, object id or ordering key — holds U+0000
    /// (NUL), which PostgreSQL's text cannot hold. Refused the same way on
    /// every store, before anything is stored or run: answered 400
    /// `{"error":"nul_in_text"}` (a retry of the same bytes cannot succeed),
    /// logged with the field's name.
    Unstorable,
}

impl Outcome {
    /// The HTTP status.
    #[must_use]
    pub fn status(self) -> http::StatusCode {
        match self {
            Outcome::Handled | Outcome::Duplicate | Outcome::Unknown => {
                http::StatusCode::NO_CONTENT
            }
            Outcome::Stored => http::StatusCode::ACCEPTED,
            Outcome::InProgress => http::StatusCode::CONFLICT,
            Outcome::HandlerFailed => http::StatusCode::INTERNAL_SERVER_ERROR,
            Outcome::StoreUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Unstorable => http::StatusCode::BAD_REQUEST,
        }
    }

    /// The outcome's name for logs and metrics: `handled`, `duplicate`,
    /// `unknown`, `in_progress`, `handler_failed`, `store_unavailable`,
    /// `stored`, `unstorable`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Unknown => "unknown",
            Outcome::InProgress => "in_progress",
            Outcome::HandlerFailed => "handler_failed",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::Stored => "stored",
            Outcome::Unstorable => "unstorable",
        }
    }

    /// The error code, for failures.
    #[must_use]
    pub fn code(self) -> Option<&'static str> {
        match self {
            Outcome::Handled | Outcome::Duplicate | Outcome::Unknown | Outcome::Stored => None,
            Outcome::InProgress => Some("in_progress"),
            Outcome::HandlerFailed => Some("handler_failed"),
            Outcome::StoreUnavailable => Some("store_unavailable"),
            Outcome::Unstorable => Some("nul_in_text"),
        }
    }

    /// The response body: empty for 204, `{"error":"<code>"}` otherwise
    /// (served as `application/json`).
    #[must_use]
    pub fn body(self) -> &'static str {
        match self {
            Outcome::Handled | Outcome::Duplicate | Outcome::Unknown | Outcome::Stored => "",
            Outcome::InProgress => r#"{"error":"in_progress"}"#,
            Outcome::HandlerFailed => r#"{"error":"handler_failed"}"#,
            Outcome::StoreUnavailable => r#"{"error":"store_unavailable"}"#,
            Outcome::Unstorable => r#"{"error":"nul_in_text"}"#,
        }
    }

    /// `Retry-After` in seconds, for 409 and 503.
    #[must_use]
    pub fn retry_after(self) -> Option<u32> {
        matches!(self, Outcome::InProgress | Outcome::StoreUnavailable).then_some(RETRY_AFTER_SECS)
    }

    /// Whether the answer acknowledges the delivery (2xx).
    #[must_use]
    pub fn acknowledges(self) -> bool {
        self.status().is_success()
    }

    /// The whole answer as an `http` 1.x response: status, body, and
    /// `Content-Type: application/json` and `Retry-After` where due. Every
    /// adapter's `Dispatched` answers exactly this.
    #[must_use]
    pub fn to_response(self) -> http::Response<bytes::Bytes> {
        let mut resp = http::Response::new(bytes::Bytes::from_static(self.body().as_bytes()));
        *resp.status_mut() = self.status();
        if !self.body().is_empty() {
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        resp
    }
}

/// The name of the first text of `event` (or of `extra`, named) the stores
/// keep that holds U+0000, if any: what [`Outcome::Unstorable`] refuses.
pub(crate) fn nul_field(
    event: &WebhookEvent,
    extra: &[(&'static str, Option<&str>)],
) -> Option<&'static str> {
    let fields = [
        ("id", Some(event.id())),
        ("type", Some(event.event_type())),
        ("tenant", event.tenant()),
        ("account_id", event.account_id()),
        ("occurred_at", event.occurred_at()),
    ];
    fields
        .iter()
        .chain(extra)
        .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        .map(|(name, _)| *name)
}
