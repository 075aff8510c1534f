//! Answering the dispatcher's outcomes (feature `dispatch`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use plugipay_webhook_dispatch::Dispatcher;

use crate::VerifiedEvent;

plugipay_webhook::__define_adapter_types!(@dispatched "axum");

impl IntoResponse for Dispatched {
    fn into_response(self) -> Response {
        let (parts, body) = self.0.to_response().into_parts();
        (parts, body).into_response()
    }
}

/// A complete receiver: verifies, dispatches, answers the outcome. Needs
/// `Verifier: FromRef<S>` and `Dispatcher: FromRef<S>` (a
/// `#[derive(FromRef)]` state holding both).
///
/// ```
/// use axum::{extract::FromRef, routing::post, Router};
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
///
/// #[derive(Clone, FromRef)]
/// struct AppState { verifier: Verifier, dispatcher: Dispatcher }
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let app: Router = Router::new()
///     .route("/webhooks/plugipay", post(plugipay_webhook_axum::dispatch))
///     .with_state(AppState { verifier: Verifier::new("whsec_…"), dispatcher });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn dispatch(State(dispatcher): State<Dispatcher>, event: VerifiedEvent) -> Dispatched {
    Dispatched(dispatcher.dispatch(&event).await)
}
