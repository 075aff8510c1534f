//! Verifying one `http` 1.x request: the part the tower layer and the axum
//! extractor share.

use bytes::{Buf, Bytes};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyDataStream, Full};
use plugipay_webhook::{Rejection, Verifier, WebhookEvent, SIGNATURE_HEADER};

/// Verifies a request given its headers and body, following SPEC.md section 6
/// in order: header rules and a declared `Content-Length` before the body is
/// touched; then the raw body (never decoded) read up to the verifier's limit
/// within its read deadline; then signature, freshness and envelope.
///
/// The body's bytes are kept without a copy when they arrive in one frame.
/// Needs a Tokio runtime with timers enabled (`#[tokio::main]` has them).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http_body_util::Full;
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
///
/// let verifier = Verifier::new("whsec_test");
/// let (body, signature) = TestDelivery::new("whsec_test", "plugipay.payout.paid.v1").into_parts();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-plugipay-signature", signature.parse().unwrap());
///
/// let event = plugipay_webhook_tower::verify_request(&verifier, &headers, Full::new(body))
///     .await
///     .unwrap();
/// assert_eq!(event.event_type(), "plugipay.payout.paid.v1");
/// # }
/// ```
pub async fn verify_request<B>(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: B,
) -> Result<WebhookEvent, Rejection>
where
    B: Body,
    B::Data: Buf,
{
    let declared = declared_length(headers).or_else(|| body.size_hint().exact());
    let signature = verifier.precheck(
        headers
            .get_all(SIGNATURE_HEADER)
            .iter()
            .map(HeaderValue::as_bytes),
        declared,
    )?;
    plugipay_webhook::read_and_verify(verifier, &signature, declared, BodyDataStream::new(body))
        .await
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| plugipay_webhook::content_length(v.as_bytes()))
}

/// The response SPEC.md section 6 assigns to a rejection: its status,
/// `Content-Type: application/json`, the body `{"error":"<code>"}`, and
/// `Connection: close` after 408 and 413.
///
/// ```
/// use plugipay_webhook::Rejection;
/// let resp = plugipay_webhook_tower::rejection_response(&Rejection::PayloadTooLarge);
/// assert_eq!(resp.status(), 413);
/// assert_eq!(resp.headers()["connection"], "close");
/// ```
#[must_use]
pub fn rejection_response(rejection: &Rejection) -> Response<Full<Bytes>> {
    if matches!(rejection, Rejection::VerifierMissing) {
        tracing::error!(
            "plugipay webhook: no Verifier is configured for this route; answering 500"
        );
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(rejection.body().as_bytes())));
    *resp.status_mut() =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in rejection.headers() {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    resp
}
