//! Answering the dispatcher's outcomes (feature `dispatch`).

use actix_web::body::BoxBody;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use plugipay_webhook_dispatch::Dispatcher;

use crate::extract::respond;
use crate::VerifiedEvent;

plugipay_webhook::__define_adapter_types!(@dispatched "actix-web");

impl Responder for Dispatched {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse {
        respond(self.0.to_response())
    }
}

/// A complete receiver: verifies, dispatches through the `web::Data<Dispatcher>`
/// registered with the app, answers the outcome.
///
/// ```
/// use actix_web::{web, App};
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_dispatch::{Dispatcher, MemoryStore};
///
/// let dispatcher = Dispatcher::builder(MemoryStore::new())
///     .on("plugipay.invoice.paid.v1", |event| async move {
///         println!("paid: {}", event.object()["id"]);
///         Ok::<_, std::io::Error>(())
///     })
///     .build()?;
/// let app = App::new()
///     .app_data(Verifier::new("whsec_…"))
///     .app_data(web::Data::new(dispatcher))
///     .route("/webhooks/plugipay", web::post().to(plugipay_webhook_actix_web::dispatch));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn dispatch(dispatcher: web::Data<Dispatcher>, event: VerifiedEvent) -> Dispatched {
    Dispatched(dispatcher.dispatch(&event).await)
}
