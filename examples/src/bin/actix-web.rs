//! The actix-web receiver: `POST /webhooks/plugipay` and
//! `POST /tenants/{tenant}/webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin actix-web

use actix_web::{web, App, HttpResponse, HttpServer};
use plugipay_webhook_actix_web::{Dispatched, VerifiedEvent};
use plugipay_webhook_examples::{
    init_tracing, render_metrics, Config, Receiver, HEALTH_ROUTE, METRICS_CONTENT_TYPE,
    METRICS_ROUTE, PLAIN_ROUTE, TENANT_ROUTE, WEBHOOK_ROUTE,
};

async fn plugipay_webhook(receiver: web::Data<Receiver>, event: VerifiedEvent) -> Dispatched {
    receiver.handle(&event).await.into()
}

async fn healthz(receiver: web::Data<Receiver>) -> HttpResponse {
    let (status, body) = receiver.health().await;
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("200 or 503"))
        .content_type("application/json")
        .body(body)
}

/// actix-web stops on SIGTERM and SIGINT by itself: it stops accepting,
/// lets in-flight requests finish (up to `shutdown_timeout`) and exits.
fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let addr = config.addr();
    let result = actix_web::rt::System::new().block_on(async move {
        let receiver = web::Data::new(Receiver::from_env_or_exit().await);
        let workers = receiver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(config.verifier.clone())
                .app_data(receiver.clone())
                .route(WEBHOOK_ROUTE, web::post().to(plugipay_webhook))
                .route(HEALTH_ROUTE, web::get().to(healthz))
                .route(
                    METRICS_ROUTE,
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type(METRICS_CONTENT_TYPE)
                            .body(render_metrics())
                    }),
                )
                // The tenants' verifiers on their own resource.
                .service(
                    web::resource(TENANT_ROUTE)
                        .app_data(config.tenants.clone())
                        .route(web::post().to(plugipay_webhook)),
                )
                // A baseline for load comparisons: reads the same body, verifies nothing.
                .route(
                    PLAIN_ROUTE,
                    web::post()
                        .to(|_body: web::Bytes| async { HttpResponse::NoContent().finish() }),
                )
        })
        .shutdown_timeout(30)
        .bind(addr)?;
        for addr in server.addrs() {
            println!("listening on http://{addr}");
        }
        let served = server.run().await;
        workers.shutdown().await;
        served
    });
    if let Err(e) = result {
        eprintln!("error: cannot serve on {addr}: {e}");
        std::process::exit(1);
    }
}
