//! The actix-web receiver: `POST /webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin actix-web

use actix_web::{web, App, HttpResponse, HttpServer};
use plugipay_webhook_actix_web::VerifiedEvent;
use plugipay_webhook_examples::{init_tracing, Config, Receiver, WEBHOOK_ROUTE};

async fn plugipay_webhook(receiver: web::Data<Receiver>, event: VerifiedEvent) -> HttpResponse {
    receiver.handle(&event);
    HttpResponse::NoContent().finish()
}

fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let verifier = web::Data::new(config.verifier.clone());
    let receiver = web::Data::new(Receiver::new());
    let addr = config.addr();
    let result = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(verifier.clone())
                .app_data(receiver.clone())
                .route(WEBHOOK_ROUTE, web::post().to(plugipay_webhook))
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
