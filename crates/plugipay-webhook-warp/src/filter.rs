//! The `verified_event` filter and its rejection handling.

use std::sync::Arc;

use plugipay_webhook::http::{receive, HttpHead, Rejection, VerifierSource};
use warp::http::{HeaderMap, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

plugipay_webhook::__define_adapter_types!(
    framework: "warp",
    status: StatusCode,
    convert: |s| s,
);

impl warp::reject::Reject for WebhookRejection {}

impl warp::Reply for WebhookRejection {
    fn into_response(self) -> Response {
        rejection_reply(&self.0)
    }
}

/// A filter that extracts a verified Plugipay delivery.
///
/// Follows the contract's order: the verifier for this request (`source`: a
/// [`Verifier`](plugipay_webhook::Verifier), or
/// [`Verifiers`](plugipay_webhook::http::Verifiers) per route or tenant),
/// header rules and the declared `Content-Length`, then the raw body stream
/// (never decoded) read up to the verifier's limit — a chunked body too,
/// which warp's `content_length_limit` would refuse with 411 — within its
/// read deadline, then signature, freshness and envelope. Failures reject
/// with [`WebhookRejection`]; put [`recover`] on the webhook route itself so
/// they are answered there and never fall through `.or()` to other routes
/// with the body already consumed.
///
/// ```
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_warp::{recover, verified_event, VerifiedEvent};
/// use warp::Filter;
///
/// let webhook = warp::post()
///     .and(warp::path!("webhooks" / "plugipay"))
///     .and(verified_event(Verifier::new("whsec_…")))
///     .map(|event: VerifiedEvent| {
///         println!("{} {}", event.id(), event.event_type());
///         warp::http::StatusCode::NO_CONTENT
///     })
///     .recover(recover);
/// let health = warp::path("health").map(|| "ok");
/// let routes = webhook.or(health);
/// # let _ = routes;
/// ```
pub fn verified_event(
    source: impl VerifierSource + 'static,
) -> impl Filter<Extract = (VerifiedEvent,), Error = warp::Rejection> + Clone {
    let source: Arc<dyn VerifierSource> = Arc::new(source);
    warp::path::full()
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(move |path: FullPath, headers: HeaderMap, body| {
            let received = receive(
                Some(&*source),
                &HttpHead::new(path.as_str(), &headers),
                body,
            );
            async move {
                received
                    .await
                    .map(VerifiedEvent)
                    .map_err(|r| warp::reject::custom(WebhookRejection(r)))
            }
        })
}

/// Answers this crate's rejections with the shared response (status,
/// `Content-Type: application/json`, `{"error":"<code>"}`, `Connection:
/// close` after 408, 413 and a failed body, `Retry-After` on 503) and hands
/// every other rejection on unchanged. Use with `.recover(recover)` on the
/// webhook route.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    match rejection.find::<WebhookRejection>() {
        Some(ours) => Ok(rejection_reply(&ours.0)),
        None => Err(rejection),
    }
}

/// The response for one rejection, for users who write their own recovery.
#[must_use]
pub fn rejection_reply(rejection: &Rejection) -> Response {
    rejection.to_response().map(Into::into)
}
