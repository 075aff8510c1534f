//! The axum receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin axum

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use plugipay_webhook::Verifier;
use plugipay_webhook_axum::VerifiedEvent;
use plugipay_webhook_examples::{init_tracing, Config, Receiver, WEBHOOK_ROUTE};

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Verifier,
    receiver: Receiver,
}

async fn plugipay_webhook(State(receiver): State<Receiver>, event: VerifiedEvent) -> StatusCode {
    receiver.handle(&event);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let app = Router::new()
        .route(WEBHOOK_ROUTE, post(plugipay_webhook))
        .with_state(AppState {
            verifier: config.verifier.clone(),
            receiver: Receiver::new(),
        });
    let listener = match tokio::net::TcpListener::bind(config.addr()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", config.addr());
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => eprintln!("error: {e}"),
    }
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
