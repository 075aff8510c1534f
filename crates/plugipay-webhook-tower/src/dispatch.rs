//! Answering the dispatcher's outcomes (feature `dispatch`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use plugipay_webhook::http::Rejection;
use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::Dispatcher;
use tower_service::Service;

plugipay_webhook::__define_adapter_types!(@dispatched "tower");

impl Dispatched {
    /// The response: status, body, `Content-Type` and `Retry-After` where due.
    #[must_use]
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.0.to_response().map(Full::new)
    }
}

/// A complete receiver behind [`VerifyWebhookLayer`](crate::VerifyWebhookLayer):
/// dispatches the verified event and answers the outcome.
///
/// ```
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
/// use plugipay_webhook_tower::{DispatchService, VerifyWebhookLayer};
/// use tower::Layer;
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let receiver = VerifyWebhookLayer::new(Verifier::new("whsec_…")).layer(DispatchService::new(dispatcher));
/// # let _ = receiver;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DispatchService {
    dispatcher: Dispatcher,
}

impl DispatchService {
    /// A service dispatching through `dispatcher`.
    #[must_use]
    pub fn new(dispatcher: Dispatcher) -> DispatchService {
        DispatchService { dispatcher }
    }
}

impl<B> Service<Request<B>> for DispatchService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let dispatcher = self.dispatcher.clone();
        let event = req.extensions().get::<WebhookEvent>().cloned();
        Box::pin(async move {
            let Some(event) = event else {
                tracing::error!(
                    "plugipay webhook: DispatchService got a request without a verified event; \
                     put it behind VerifyWebhookLayer. Answering 500 verifier_missing"
                );
                return Ok(crate::rejection_response(&Rejection::VerifierMissing));
            };
            Ok(Dispatched(dispatcher.dispatch(&event).await).into_response())
        })
    }
}
