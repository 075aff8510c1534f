//! The `verified_event` filter and its rejection handling.

use plugipay_webhook::{Rejection, Verifier, WebhookEvent, SIGNATURE_HEADER};
use warp::http::header::{HeaderValue, CONTENT_LENGTH};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::Filter;

/// A filter that extracts a verified Plugipay delivery.
///
/// Follows SPEC.md section 6: header rules and the declared `Content-Length`
/// first, then the raw body stream (never decoded) read up to the verifier's
/// limit — a chunked body too, which warp's `content_length_limit` would
/// refuse with 411 — within its read deadline, then signature, freshness and
/// envelope. Failures reject with [`WebhookRejection`]; put [`recover`] on
/// the webhook route itself so they are answered there and never fall
/// through `.or()` to other routes with the body already consumed.
///
/// ```
/// use plugipay_webhook::{Verifier, WebhookEvent};
/// use plugipay_webhook_warp::{recover, verified_event};
/// use warp::Filter;
///
/// let webhook = warp::post()
///     .and(warp::path!("webhooks" / "plugipay"))
///     .and(verified_event(Verifier::new("whsec_…")))
///     .map(|event: WebhookEvent| {
///         println!("{} {}", event.id(), event.event_type());
///         warp::http::StatusCode::NO_CONTENT
///     })
///     .recover(recover);
/// let health = warp::path("health").map(|| "ok");
/// let routes = webhook.or(health);
/// # let _ = routes;
/// ```
pub fn verified_event(
    verifier: Verifier,
) -> impl Filter<Extract = (WebhookEvent,), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and(warp::body::stream())
        .and_then(move |headers: HeaderMap, body| {
            let verifier = verifier.clone();
            async move {
                let declared = headers
                    .get(CONTENT_LENGTH)
                    .and_then(|v| plugipay_webhook::content_length(v.as_bytes()));
                let signature = verifier
                    .precheck(
                        headers
                            .get_all(SIGNATURE_HEADER)
                            .iter()
                            .map(HeaderValue::as_bytes),
                        declared,
                    )
                    .map_err(reject)?;
                plugipay_webhook::read_and_verify(&verifier, &signature, declared, body)
                    .await
                    .map_err(reject)
            }
        })
}

fn reject(r: Rejection) -> warp::Rejection {
    warp::reject::custom(WebhookRejection(r))
}

/// Why [`verified_event`] rejected a request (a warp [`Reject`](warp::reject::Reject)).
#[derive(Debug)]
pub struct WebhookRejection(pub Rejection);

impl WebhookRejection {
    /// The error code (`signature_invalid`, `payload_too_large`, …).
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.0.code()
    }
}

impl warp::reject::Reject for WebhookRejection {}

/// Answers this crate's rejections with the shared response (status,
/// `Content-Type: application/json`, `{"error":"<code>"}`, `Connection:
/// close` after 408 and 413) and hands every other rejection on unchanged.
/// Use with `.recover(recover)` on the webhook route.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, warp::Rejection> {
    match rejection.find::<WebhookRejection>() {
        Some(ours) => Ok(rejection_reply(&ours.0)),
        None => Err(rejection),
    }
}

/// The response for one rejection, for users who write their own recovery.
#[must_use]
pub fn rejection_reply(rejection: &Rejection) -> Response {
    let mut resp = Response::new(rejection.body().into());
    *resp.status_mut() =
        StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in rejection.headers() {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    resp
}
