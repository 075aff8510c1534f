//! The warp receiver: `POST /webhooks/plugipay`, verified with the
//! `verified_event` filter and answered by `recover` on that route.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin warp

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_examples::{init_tracing, Config, Receiver};
use plugipay_webhook_warp::{recover, verified_event};
use warp::http::StatusCode;
use warp::Filter;

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::new();
    let webhook = warp::post()
        .and(warp::path!("webhooks" / "plugipay"))
        .and(verified_event(config.verifier.clone()))
        .map(move |event: WebhookEvent| {
            receiver.handle(&event);
            StatusCode::NO_CONTENT
        })
        .recover(recover);
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
    warp::serve(webhook).incoming(listener).run().await;
}
