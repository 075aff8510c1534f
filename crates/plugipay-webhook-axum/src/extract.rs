//! The `VerifiedEvent` extractor and its rejection.

use std::fmt;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plugipay_webhook::{Rejection, Verifier, WebhookEvent};

/// A verified Plugipay delivery, extracted from the request.
///
/// Takes the [`Verifier`] from the application state (`Verifier: FromRef<S>`,
/// so a router without one does not compile), reads the raw body up to the
/// verifier's limit and deadline, verifies it, and hands the handler the
/// event. Being a body extractor, it must be the handler's last argument, and
/// nothing before it may read the body (no `Json<T>`, `Bytes` or `String`).
///
/// Dereferences to [`WebhookEvent`]. When a
/// [`VerifyWebhookLayer`](https://docs.rs/plugipay-webhook-tower) already
/// verified the request, the extractor reuses its event.
///
/// ```
/// use axum::{http::StatusCode, routing::post, Router};
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_axum::VerifiedEvent;
///
/// async fn plugipay_webhook(event: VerifiedEvent) -> StatusCode {
///     match event.event_type() {
///         "plugipay.invoice.paid.v1" => { /* record the payment */ }
///         other => println!("plugipay event unhandled: {other}"),
///     }
///     StatusCode::NO_CONTENT
/// }
///
/// let app: Router = Router::new()
///     .route("/webhooks/plugipay", post(plugipay_webhook))
///     .with_state(Verifier::new("whsec_…"));
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedEvent(pub WebhookEvent);

impl VerifiedEvent {
    /// The event.
    #[must_use]
    pub fn into_inner(self) -> WebhookEvent {
        self.0
    }
}

impl Deref for VerifiedEvent {
    type Target = WebhookEvent;

    fn deref(&self) -> &WebhookEvent {
        &self.0
    }
}

impl<S> FromRequest<S> for VerifiedEvent
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(event) = req.extensions().get::<WebhookEvent>() {
            return Ok(VerifiedEvent(event.clone()));
        }
        let verifier = Verifier::from_ref(state);
        let (parts, body) = req.into_parts();
        plugipay_webhook_tower::verify_request(&verifier, &parts.headers, body)
            .await
            .map(VerifiedEvent)
            .map_err(WebhookRejection)
    }
}

/// Why [`VerifiedEvent`] refused a request. As a response it is exactly the
/// contract's: the status, `Content-Type: application/json`,
/// `{"error":"<code>"}`, and `Connection: close` after 408 and 413.
///
/// To answer differently, take `Result<VerifiedEvent, WebhookRejection>` in
/// the handler (or use axum-extra's `WithRejection`) and map it.
#[derive(Debug, Clone)]
pub struct WebhookRejection(pub Rejection);

impl WebhookRejection {
    /// The status this rejection answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error code (`signature_invalid`, `payload_too_large`, …).
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The underlying rejection.
    #[must_use]
    pub fn into_inner(self) -> Rejection {
        self.0
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for WebhookRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        plugipay_webhook_tower::rejection_response(&self.0).into_response()
    }
}
