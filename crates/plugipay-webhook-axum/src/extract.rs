//! The `VerifiedEvent` extractor and its rejection.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plugipay_webhook::http::{receive, HttpHead, VerifierSource};
use plugipay_webhook::{Verifier, WebhookEvent};

plugipay_webhook::__define_adapter_types!(
    framework: "axum",
    status: StatusCode,
    convert: |s| s,
    generic_event,
);

/// A verified Plugipay delivery, extracted from the request.
///
/// Takes its verifier source `V` from the application state (`V:
/// FromRef<S>`, so a router without one does not compile): by default a
/// [`Verifier`]; [`Verifiers`](plugipay_webhook::http::Verifiers) for a
/// verifier chosen per route or per tenant (`VerifiedEvent<Verifiers>`).
/// It reads the raw body up to the verifier's limit and deadline, verifies
/// it, and hands the handler the event. Being a body extractor, it must be
/// the handler's last argument, and nothing before it may read the body (no
/// `Json<T>`, `Bytes` or `String`).
///
/// Per-route and per-tenant sources see the whole request path, also under
/// `Router::nest` (axum's `OriginalUri`): write their patterns with the
/// mount point.
///
/// Dereferences to [`WebhookEvent`]. When a `VerifyWebhookLayer`
/// (plugipay-webhook-tower) already verified the request, the extractor
/// reuses its event.
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
pub struct VerifiedEvent<V = Verifier> {
    event: WebhookEvent,
    source: PhantomData<fn() -> V>,
}

impl<V> VerifiedEvent<V> {
    /// The event.
    #[must_use]
    pub fn into_inner(self) -> WebhookEvent {
        self.event
    }
}

impl<V> Deref for VerifiedEvent<V> {
    type Target = WebhookEvent;

    fn deref(&self) -> &WebhookEvent {
        &self.event
    }
}

impl<V> Clone for VerifiedEvent<V> {
    fn clone(&self) -> Self {
        VerifiedEvent {
            event: self.event.clone(),
            source: PhantomData,
        }
    }
}

impl<V> std::fmt::Debug for VerifiedEvent<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VerifiedEvent").field(&self.event).finish()
    }
}

impl<S, V> FromRequest<S> for VerifiedEvent<V>
where
    V: VerifierSource + FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let event = match req.extensions().get::<WebhookEvent>() {
            Some(event) => event.clone(),
            None => {
                let source = V::from_ref(state);
                let (parts, body) = req.into_parts();
                // Under `Router::nest` the request's URI has lost the mount
                // point; per-route and per-tenant patterns name the whole
                // path, which axum keeps as `OriginalUri`.
                let path = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or_else(|| parts.uri.path(), |original| original.0.path());
                let head = HttpHead::new(path, &parts.headers);
                receive(Some(&source), &head, body.into_data_stream()).await?
            }
        };
        Ok(VerifiedEvent {
            event,
            source: PhantomData,
        })
    }
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let (parts, body) = self.0.to_response().into_parts();
        (parts, body).into_response()
    }
}
