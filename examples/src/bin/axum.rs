//! The axum receiver: `POST /webhooks/plugipay` and
//! `POST /tenants/{tenant}/webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin axum

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use plugipay_webhook::http::Verifiers;
use plugipay_webhook::Verifier;
use plugipay_webhook_axum::{Dispatched, VerifiedEvent};
use plugipay_webhook_examples::{
    init_tracing, render_metrics, shutdown_signal, Config, Receiver, HEALTH_ROUTE,
    METRICS_CONTENT_TYPE, METRICS_ROUTE, PLAIN_ROUTE, TENANT_ROUTE, WEBHOOK_ROUTE,
};

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Verifier,
    tenants: Verifiers,
    receiver: Receiver,
}

async fn plugipay_webhook<V>(
    State(receiver): State<Receiver>,
    event: VerifiedEvent<V>,
) -> Dispatched {
    receiver.handle(&event).await.into()
}

async fn healthz(State(receiver): State<Receiver>) -> impl axum::response::IntoResponse {
    let (status, body) = receiver.health().await;
    (
        StatusCode::from_u16(status).expect("200 or 503"),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::from_env_or_exit().await;
    let mut app = Router::new()
        .route(WEBHOOK_ROUTE, post(plugipay_webhook::<Verifier>))
        .route(TENANT_ROUTE, post(plugipay_webhook::<Verifiers>))
        .route(HEALTH_ROUTE, axum::routing::get(healthz))
        .route(
            METRICS_ROUTE,
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                    render_metrics(),
                )
            }),
        )
        // A baseline for load comparisons: reads the same body, verifies nothing.
        .route(
            PLAIN_ROUTE,
            post(|_body: axum::body::Bytes| async { StatusCode::NO_CONTENT }),
        );
    // The inbox's console under /console, when PLUGIPAY_CONSOLE_TOKEN is set.
    if let Some(console) = receiver.console_or_exit(&config) {
        app = app.merge(console.router());
    }
    let app = app.with_state(AppState {
        verifier: config.verifier.clone(),
        tenants: config.tenants.clone(),
        receiver: receiver.clone(),
    });
    let listener = config.listen_or_exit().await;
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    receiver.shutdown().await;
}
