//! The tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Either, Full};
use plugipay_webhook::Verifier;
use tower_layer::Layer;
use tower_service::Service;

use crate::request::{rejection_response, verify_request};

/// Verifies Plugipay deliveries in front of any tower service (http 1.x).
///
/// Failures are answered by the layer itself with SPEC.md section 6's status
/// and `{"error":"<code>"}` body; the inner service never sees them. On
/// success the inner service gets the request with the verified
/// [`WebhookEvent`](plugipay_webhook::WebhookEvent) in its extensions and the
/// same bytes as its body (`Full<Bytes>`).
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
#[derive(Debug, Clone)]
pub struct VerifyWebhookLayer {
    verifier: Verifier,
}

impl VerifyWebhookLayer {
    /// A layer verifying with `verifier` (its secrets, tolerance and limits).
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        VerifyWebhookLayer { verifier }
    }
}

impl<S> Layer<S> for VerifyWebhookLayer {
    type Service = VerifyWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyWebhook {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service built by [`VerifyWebhookLayer`].
#[derive(Debug, Clone)]
pub struct VerifyWebhook<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> VerifyWebhook<S> {
    /// Wraps `inner` directly, without a layer.
    pub fn new(inner: S, verifier: Verifier) -> Self {
        VerifyWebhook { inner, verifier }
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
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            match verify_request(&verifier, &parts.headers, body).await {
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
