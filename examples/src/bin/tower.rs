//! The tower receiver: plain hyper, `VerifyWebhookLayer` in front of a
//! `service_fn`, routing by hand.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin tower

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use plugipay_webhook::WebhookEvent;
use plugipay_webhook_examples::{
    init_tracing, Config, Outcome, Receiver, PLAIN_ROUTE, WEBHOOK_ROUTE,
};
use plugipay_webhook_tower::VerifyWebhookLayer;
use tower::{service_fn, Layer};

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// SPEC.md section 7: 204, or the JSON error with `Retry-After` where due.
fn respond(outcome: Outcome) -> Response<Full<Bytes>> {
    let mut resp =
        empty(StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if !outcome.body().is_empty() {
        *resp.body_mut() = Full::new(Bytes::from_static(outcome.body().as_bytes()));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(secs) = outcome.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    resp
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::from_env_or_exit().await;
    let webhook = VerifyWebhookLayer::new(config.verifier.clone()).layer(service_fn(
        move |req: Request<Full<Bytes>>| {
            let receiver = receiver.clone();
            async move {
                let resp = match req.extensions().get::<WebhookEvent>() {
                    Some(event) => respond(receiver.handle(event).await),
                    None => empty(StatusCode::INTERNAL_SERVER_ERROR),
                };
                Ok::<_, Infallible>(resp)
            }
        },
    ));
    let listener = config.listen_or_exit().await;
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
                if req.uri().path() == PLAIN_ROUTE && req.method() == Method::POST {
                    // A baseline for load comparisons: reads the same body, verifies nothing.
                    let _ = req.into_body().collect().await;
                    return Ok(empty(StatusCode::NO_CONTENT).map(http_body_util::Either::Right));
                }
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
