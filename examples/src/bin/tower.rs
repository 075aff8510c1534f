//! The tower receiver: plain hyper, `VerifyWebhookLayer` in front of a
//! `service_fn`, routing by hand.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin tower

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use plugipay_webhook::WebhookEvent;
use plugipay_webhook_examples::{init_tracing, Config, Receiver, WEBHOOK_ROUTE};
use plugipay_webhook_tower::VerifyWebhookLayer;
use tower::{service_fn, Layer};

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::new();
    let webhook = VerifyWebhookLayer::new(config.verifier.clone()).layer(service_fn(
        move |req: Request<Full<Bytes>>| {
            let receiver = receiver.clone();
            async move {
                if let Some(event) = req.extensions().get::<WebhookEvent>() {
                    receiver.handle(event);
                }
                Ok::<_, Infallible>(empty(StatusCode::NO_CONTENT))
            }
        },
    ));
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
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let webhook = webhook.clone();
        // Routing is the application's: only POST /webhooks/plugipay is verified.
        let app = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut webhook = webhook.clone();
            async move {
                if req.uri().path() != WEBHOOK_ROUTE {
                    return Ok(empty(StatusCode::NOT_FOUND).map(http_body_util::Either::Right));
                }
                if req.method() != Method::POST {
                    return Ok(
                        empty(StatusCode::METHOD_NOT_ALLOWED).map(http_body_util::Either::Right)
                    );
                }
                tower::Service::call(&mut webhook, req).await
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .await;
        });
    }
}
