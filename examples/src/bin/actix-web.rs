//! The actix-web receiver: `POST /webhooks/plugipay` and
//! `POST /tenants/{tenant}/webhooks/plugipay`, verified with the
//! `VerifiedEvent` extractor.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin actix-web

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use plugipay_webhook_actix_web::{Dispatched, VerifiedEvent};
use plugipay_webhook_examples::{
    init_tracing, render_metrics, Config, Console, Receiver, CONSOLE_ROUTE, HEALTH_ROUTE,
    METRICS_CONTENT_TYPE, METRICS_ROUTE, PLAIN_ROUTE, TENANT_ROUTE, WEBHOOK_ROUTE,
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

/// The console under actix-web: its `http` 1 request, from actix-web's own
/// types (actix-web 4 speaks `http` 0.2), and back.
async fn console(req: HttpRequest, body: web::Bytes, console: web::Data<Console>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let response = console
        .respond_with(req.method().as_str(), &req.uri().to_string(), headers, body)
        .await;
    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in response.headers() {
        out.append_header((name.as_str(), value.as_bytes()));
    }
    out.body(response.into_body())
}

/// actix-web stops on SIGTERM and SIGINT by itself: it stops accepting,
/// lets in-flight requests finish (up to `shutdown_timeout`) and exits.
fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let addr = config.addr();
    let result = actix_web::rt::System::new().block_on(async move {
        let receiver = web::Data::new(Receiver::from_env_or_exit().await);
        // The inbox's console under /console, when PLUGIPAY_CONSOLE_TOKEN is set.
        let console_data = receiver.console_or_exit(&config).map(web::Data::new);
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
                .configure(|cfg| {
                    if let Some(c) = &console_data {
                        cfg.service(
                            web::scope(CONSOLE_ROUTE)
                                .app_data(c.clone())
                                .default_service(web::to(console)),
                        );
                    }
                })
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
