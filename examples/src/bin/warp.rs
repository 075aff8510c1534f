//! The warp receiver: `POST /webhooks/plugipay`, verified with the
//! `verified_event` filter and answered by `recover` on that route.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin warp

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_examples::{init_tracing, Config, Outcome, Receiver};
use plugipay_webhook_warp::{recover, verified_event};
use warp::http::StatusCode;
use warp::Filter;

/// SPEC.md section 7: 204, or the JSON error with `Retry-After` where due.
fn respond(outcome: Outcome) -> warp::reply::Response {
    let mut resp = warp::reply::Response::new(outcome.body().into());
    *resp.status_mut() =
        StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !outcome.body().is_empty() {
        resp.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("application/json"),
        );
    }
    if let Some(secs) = outcome.retry_after() {
        resp.headers_mut()
            .insert(warp::http::header::RETRY_AFTER, secs.into());
    }
    resp
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::from_env_or_exit().await;
    let webhook = warp::post()
        .and(warp::path!("webhooks" / "plugipay"))
        .and(verified_event(config.verifier.clone()))
        .then(move |event: WebhookEvent| {
            let receiver = receiver.clone();
            async move { respond(receiver.handle(&event).await) }
        })
        .recover(recover);
    // A baseline for load comparisons: reads the same body, verifies nothing.
    let plain = warp::post()
        .and(warp::path("plain"))
        .and(warp::path::end())
        .and(warp::body::bytes())
        .map(|_body: bytes::Bytes| StatusCode::NO_CONTENT);
    let routes = webhook.or(plain);
    let listener = config.listen_or_exit().await;
    warp::serve(routes).incoming(listener).run().await;
}
