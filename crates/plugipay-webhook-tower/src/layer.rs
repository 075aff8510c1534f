//! The tower layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyDataStream, Either, Full};
use plugipay_webhook::http::{receive, Rejection, VerifierSource};
use tower_layer::Layer;
use tower_service::Service;

/// Verifies Plugipay deliveries in front of any tower service (http 1.x).
///
/// Failures are answered by the layer itself with the contract's status and
/// `{"error":"<code>"}` body; the inner service never sees them. On success
/// the inner service gets the request with the verified
/// [`WebhookEvent`](plugipay_webhook::WebhookEvent) in its extensions and the
/// same bytes as its body (`Full<Bytes>`).
///
/// The verifier comes from any [`VerifierSource`]: a
/// [`Verifier`](plugipay_webhook::Verifier), or
/// [`Verifiers`](plugipay_webhook::http::Verifiers) chosen per route or per
/// tenant.
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use plugipay_webhook::{Verifier, WebhookEvent};
/// use plugipay_webhook_tower::VerifyWebhookLayer;
///
/// async fn hook(Extension(event): Extension<WebhookEvent>) -> axum::http::StatusCode {
///     println!("{} {}", event.id(), event.event_type());
///     axum::http::StatusCode::NO_CONTENT
/// }
///
/// let app: Router = Router::new()
///     .route("/webhooks/plugipay", post(hook))
///     .route_layer(VerifyWebhookLayer::new(Verifier::new("whsec_…")));
/// ```
#[derive(Clone)]
pub struct VerifyWebhookLayer {
    source: Arc<dyn VerifierSource>,
}

impl std::fmt::Debug for VerifyWebhookLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyWebhookLayer").finish_non_exhaustive()
    }
}

impl VerifyWebhookLayer {
    /// A layer verifying with `source`: a `Verifier` (its secrets,
    /// tolerance and limits) or `Verifiers`.
    #[must_use]
    pub fn new(source: impl VerifierSource + 'static) -> Self {
        VerifyWebhookLayer {
            source: Arc::new(source),
        }
    }
}

impl<S> Layer<S> for VerifyWebhookLayer {
    type Service = VerifyWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyWebhook {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service built by [`VerifyWebhookLayer`].
#[derive(Clone)]
pub struct VerifyWebhook<S> {
    inner: S,
    source: Arc<dyn VerifierSource>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for VerifyWebhook<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyWebhook")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> VerifyWebhook<S> {
    /// Wraps `inner` directly, without a layer.
    pub fn new(inner: S, source: impl VerifierSource + 'static) -> Self {
        VerifyWebhook {
            inner,
            source: Arc::new(source),
        }
    }
}

/// The response body: the inner service's, or the layer's JSON error.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// The future returned by [`VerifyWebhook`].
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyWebhook<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Buf + Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service that was driven to readiness handles this request; a
        // fresh clone stays behind for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let received = receive(Some(&*self.source), &parts, BodyDataStream::new(body));
        Box::pin(async move {
            match received.await {
                Ok(event) => {
                    let body = Full::new(event.raw_body().clone());
                    parts.extensions.insert(event);
                    let resp = inner.call(Request::from_parts(parts, body)).await?;
                    Ok(resp.map(Either::Left))
                }
                Err(rejection) => Ok(rejection_response(&rejection).map(Either::Right)),
            }
        })
    }
}

/// The response the contract assigns to a rejection: its status,
/// `Content-Type: application/json`, the body `{"error":"<code>"}`,
/// `Connection: close` after 408, 413 and a failed body, `Retry-After` on 503.
///
/// ```
/// use plugipay_webhook::http::Rejection;
/// let resp = plugipay_webhook_tower::rejection_response(&Rejection::PayloadTooLarge);
/// assert_eq!(resp.status(), 413);
/// assert_eq!(resp.headers()["connection"], "close");
/// ```
#[must_use]
pub fn rejection_response(rejection: &Rejection) -> Response<Full<Bytes>> {
    rejection.to_response().map(Full::new)
}
