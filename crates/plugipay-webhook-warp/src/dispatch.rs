//! Answering the dispatcher's outcomes (feature `dispatch`).

use plugipay_webhook::http::VerifierSource;
use plugipay_webhook_dispatch::Dispatcher;
use warp::reply::Response;
use warp::Filter;

use crate::{verified_event, VerifiedEvent};

plugipay_webhook::__define_adapter_types!(@dispatched "warp");

impl warp::Reply for Dispatched {
    fn into_response(self) -> Response {
        self.0.to_response().map(Into::into)
    }
}

/// A complete receiver: verifies with `source`, dispatches through
/// `dispatcher`, answers the outcome. Add [`recover`](crate::recover) for
/// the rejections.
///
/// ```
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
/// use warp::Filter;
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let webhook = warp::post()
///     .and(warp::path!("webhooks" / "plugipay"))
///     .and(plugipay_webhook_warp::dispatch(Verifier::new("whsec_…"), dispatcher))
///     .recover(plugipay_webhook_warp::recover);
/// # let _ = webhook;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dispatch(
    source: impl VerifierSource + 'static,
    dispatcher: Dispatcher,
) -> impl Filter<Extract = (Dispatched,), Error = warp::Rejection> + Clone {
    verified_event(source).then(move |event: VerifiedEvent| {
        let dispatcher = dispatcher.clone();
        async move { Dispatched(dispatcher.dispatch(&event).await) }
    })
}
