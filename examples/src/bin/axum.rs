//! The axum receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin axum

use axum::extract::{FromRef, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use plugipay_webhook::Verifier;
use plugipay_webhook_axum::VerifiedEvent;
use plugipay_webhook_examples::{
    init_tracing, Config, Outcome, Receiver, PLAIN_ROUTE, WEBHOOK_ROUTE,
};

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Verifier,
    receiver: Receiver,
}

async fn plugipay_webhook(State(receiver): State<Receiver>, event: VerifiedEvent) -> Response {
    respond(receiver.handle(&event).await)
}

/// SPEC.md section 7: 204, or the JSON error with `Retry-After` where due.
fn respond(outcome: Outcome) -> Response {
    let status =
        StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if outcome.body().is_empty() {
        return status.into_response();
    }
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        outcome.body(),
    )
        .into_response();
    if let Some(secs) = outcome.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let app = Router::new()
        .route(WEBHOOK_ROUTE, post(plugipay_webhook))
        // A baseline for load comparisons: reads the same body, verifies nothing.
        .route(
            PLAIN_ROUTE,
            post(|_body: axum::body::Bytes| async { StatusCode::NO_CONTENT }),
        )
        .with_state(AppState {
            verifier: config.verifier.clone(),
            receiver: Receiver::from_env_or_exit().await,
        });
    let listener = config.listen_or_exit().await;
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
