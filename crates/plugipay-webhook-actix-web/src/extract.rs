//! The `VerifiedEvent` extractor and its error.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use plugipay_webhook::{Rejection, Verifier, WebhookEvent, SIGNATURE_HEADER};

/// A verified Plugipay delivery, extracted from the request.
///
/// Takes the [`Verifier`] from `app_data` (register it with
/// `App::app_data(web::Data::new(verifier))`), reads the raw payload stream —
/// never decompressed — up to the verifier's limit and deadline, verifies it,
/// and hands the handler the event. Without a registered verifier every
/// request is answered `500 {"error":"verifier_missing"}` and an error is
/// logged.
///
/// Dereferences to [`WebhookEvent`].
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_actix_web::VerifiedEvent;
///
/// async fn plugipay_webhook(event: VerifiedEvent) -> HttpResponse {
///     println!("{} {}", event.id(), event.event_type());
///     HttpResponse::NoContent().finish()
/// }
///
/// let verifier = web::Data::new(Verifier::new("whsec_…"));
/// let app = App::new()
///     .app_data(verifier)
///     .route("/webhooks/plugipay", web::post().to(plugipay_webhook));
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

impl FromRequest for VerifiedEvent {
    type Error = WebhookError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(verifier) = req.app_data::<web::Data<Verifier>>() else {
            tracing::error!(
                "plugipay webhook: no web::Data<Verifier> in app_data; answering 500 verifier_missing"
            );
            return Box::pin(std::future::ready(Err(WebhookError(
                Rejection::VerifierMissing,
            ))));
        };
        let verifier = Verifier::clone(verifier);
        let headers = req.headers();
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| plugipay_webhook::content_length(v.as_bytes()));
        // Header rules and the declared length, before the body is touched.
        let signature = match verifier.precheck(
            headers.get_all(SIGNATURE_HEADER).map(HeaderValue::as_bytes),
            declared,
        ) {
            Ok(s) => s,
            Err(r) => return Box::pin(std::future::ready(Err(WebhookError(r)))),
        };
        let payload = payload.take();
        Box::pin(async move {
            plugipay_webhook::read_and_verify(&verifier, &signature, declared, payload)
                .await
                .map(VerifiedEvent)
                .map_err(WebhookError)
        })
    }
}

/// Why [`VerifiedEvent`] refused a request; as an actix-web error it answers
/// exactly the contract's status, `Content-Type: application/json`,
/// `{"error":"<code>"}`, and closes the connection after 408 and 413.
///
/// To answer differently, take `Result<VerifiedEvent, WebhookError>` in the
/// handler.
#[derive(Debug, Clone)]
pub struct WebhookError(pub Rejection);

impl WebhookError {
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

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for WebhookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.content_type(plugipay_webhook::JSON_CONTENT_TYPE);
        if self.0.closes_connection() {
            resp.force_close();
        }
        resp.body(self.0.body())
    }
}
