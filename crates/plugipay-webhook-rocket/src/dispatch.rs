//! Answering the dispatcher's outcomes (feature `dispatch`).

use plugipay_webhook_dispatch::Dispatcher;
use rocket::data::{Data, FromData};
use rocket::http::Method;
use rocket::outcome::Outcome;
use rocket::response::{self, Responder};
use rocket::route::{self, Handler, Route};
use rocket::Request;

use crate::guard::respond;
use crate::VerifiedEvent;

plugipay_webhook::__define_adapter_types!(@dispatched "Rocket");

impl<'r> Responder<'r, 'static> for Dispatched {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        Ok(respond(self.0.to_response()))
    }
}

/// A complete receiver as a route: `POST path` verifies (with the managed
/// verifier source), dispatches through `dispatcher`, answers the outcome.
/// Register [`catchers`](crate::catchers) on the same base for the
/// rejections.
///
/// ```
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
/// use plugipay_webhook_rocket::{catchers, dispatch_route};
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let rocket = rocket::build()
///     .manage(Verifier::new("whsec_…"))
///     .mount("/webhooks", vec![dispatch_route("/plugipay", dispatcher)])
///     .register("/webhooks", catchers());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn dispatch_route(path: &str, dispatcher: Dispatcher) -> Route {
    Route::new(Method::Post, path, DispatchHandler(dispatcher))
}

#[derive(Clone)]
struct DispatchHandler(Dispatcher);

#[rocket::async_trait]
impl Handler for DispatchHandler {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        match VerifiedEvent::from_data(req, data).await {
            Outcome::Success(event) => {
                route::Outcome::from(req, Dispatched(self.0.dispatch(&event).await))
            }
            Outcome::Error((status, _)) => route::Outcome::Error(status),
            Outcome::Forward((data, status)) => route::Outcome::Forward((data, status)),
        }
    }
}
