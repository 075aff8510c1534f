//! The actix-web receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin actix-web

use actix_web::{web, App, HttpResponse, HttpServer};
use plugipay_webhook_actix_web::VerifiedEvent;
use plugipay_webhook_examples::{
    init_tracing, Config, Outcome, Receiver, PLAIN_ROUTE, WEBHOOK_ROUTE,
};

async fn plugipay_webhook(receiver: web::Data<Receiver>, event: VerifiedEvent) -> HttpResponse {
    respond(receiver.handle(&event).await)
}

/// SPEC.md section 7: 204, or the JSON error with `Retry-After` where due.
fn respond(outcome: Outcome) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(outcome.status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    if let Some(secs) = outcome.retry_after() {
        resp.insert_header(("Retry-After", secs.to_string()));
    }
    if outcome.body().is_empty() {
        resp.finish()
    } else {
        resp.content_type("application/json").body(outcome.body())
    }
}

fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let verifier = web::Data::new(config.verifier.clone());
    let addr = config.addr();
    let result = actix_web::rt::System::new().block_on(async move {
        let receiver = web::Data::new(Receiver::from_env_or_exit().await);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(verifier.clone())
                .app_data(receiver.clone())
                .route(WEBHOOK_ROUTE, web::post().to(plugipay_webhook))
                // A baseline for load comparisons: reads the same body, verifies nothing.
                .route(
                    PLAIN_ROUTE,
                    web::post()
                        .to(|_body: web::Bytes| async { HttpResponse::NoContent().finish() }),
                )
        })
        .bind(addr)?;
        for addr in server.addrs() {
            println!("listening on http://{addr}");
        }
        server.run().await
    });
    if let Err(e) = result {
        eprintln!("error: cannot serve on {addr}: {e}");
        std::process::exit(1);
    }
}
