//! The `VerifiedEvent` extractor and its error.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use plugipay_webhook::http::{receive, HeaderValues, RequestHead, VerifierSource, Verifiers};
use plugipay_webhook::Verifier;

plugipay_webhook::__define_adapter_types!(
    framework: "actix-web",
    status: StatusCode,
    convert: status,
);

/// actix-web 4 speaks `http` 0.2; the core's statuses are `http` 1.x.
fn status(s: plugipay_webhook::http::StatusCode) -> StatusCode {
    StatusCode::from_u16(s.as_u16()).expect("every status the contract uses exists in http 0.2")
}

/// An `http` 1.x response (the core's and the dispatcher's answers) as an
/// actix-web response; `Connection: close` becomes `force_close`.
pub(crate) fn respond(resp: http::Response<bytes::Bytes>) -> HttpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = HttpResponse::build(status(parts.status));
    for (name, value) in &parts.headers {
        if name == http::header::CONNECTION {
            out.force_close();
        } else {
            out.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    out.body(body)
}

/// The request head, as the core reads it.
struct Head<'a>(&'a HttpRequest);

impl RequestHead for Head<'_> {
    fn path(&self) -> &str {
        self.0.path()
    }

    fn header_values(&self, name: &str) -> HeaderValues<'_> {
        self.0
            .headers()
            .get_all(name)
            .map(actix_web::http::header::HeaderValue::as_bytes)
            .collect()
    }
}

/// The verifier source registered with the app, with or without
/// `web::Data`: `Verifiers` first, then `Verifier`.
fn source(req: &HttpRequest) -> Option<&dyn VerifierSource> {
    if let Some(v) = req.app_data::<web::Data<Verifiers>>() {
        return Some(&***v);
    }
    if let Some(v) = req.app_data::<Verifiers>() {
        return Some(v);
    }
    if let Some(v) = req.app_data::<web::Data<Verifier>>() {
        return Some(&***v);
    }
    req.app_data::<Verifier>().map(|v| v as &dyn VerifierSource)
}

/// Extracts the verified delivery.
///
/// Takes the verifier from `app_data` — a
/// [`Verifier`](plugipay_webhook::Verifier) or
/// [`Verifiers`](plugipay_webhook::http::Verifiers) (per route, per tenant),
/// registered with or without `web::Data` — reads the raw payload stream,
/// never decompressed, up to the verifier's limit and deadline, verifies
/// it, and hands the handler the event. Without a registered verifier every
/// request is answered `500 {"error":"verifier_missing"}` and an error is
/// logged.
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
/// let app = App::new()
///     .app_data(Verifier::new("whsec_…")) // or web::Data::new(…)
///     .route("/webhooks/plugipay", web::post().to(plugipay_webhook));
/// ```
impl FromRequest for VerifiedEvent {
    type Error = WebhookRejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let received = receive(source(req), &Head(req), payload.take());
        Box::pin(async move { Ok(VerifiedEvent(received.await?)) })
    }
}

impl ResponseError for WebhookRejection {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        respond(self.0.to_response())
    }
}
