//! The tower receiver: plain hyper, `VerifyWebhookLayer` in front of a
//! `service_fn`, routing by hand: `POST /webhooks/plugipay` and
//! `POST /tenants/{tenant}/webhooks/plugipay`.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin tower

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use plugipay_webhook::http::Rejection;
use plugipay_webhook::WebhookEvent;
use plugipay_webhook_examples::{
    init_tracing, render_metrics, shutdown_signal, Config, Receiver, CONSOLE_ROUTE, HEALTH_ROUTE,
    METRICS_CONTENT_TYPE, METRICS_ROUTE, PLAIN_ROUTE, WEBHOOK_ROUTE,
};
use plugipay_webhook_tower::{rejection_response, Dispatched, VerifyWebhookLayer};
use tower::{service_fn, Layer, Service};

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// `/tenants/<name>/webhooks/plugipay`.
fn is_tenant_route(path: &str) -> bool {
    path.strip_prefix("/tenants/")
        .and_then(|rest| rest.strip_suffix("/webhooks/plugipay"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::from_env_or_exit().await;
    // The inbox's console under /console, when PLUGIPAY_CONSOLE_TOKEN is set.
    let console = receiver.console_or_exit(&config).map(|c| c.service());
    let workers = receiver.clone();
    let health = receiver.clone();
    let handler = service_fn(move |req: Request<Full<Bytes>>| {
        let receiver = receiver.clone();
        async move {
            Ok::<_, Infallible>(match req.extensions().get::<WebhookEvent>() {
                Some(event) => Dispatched(receiver.handle(event).await).into_response(),
                None => rejection_response(&Rejection::VerifierMissing),
            })
        }
    });
    let webhook = VerifyWebhookLayer::new(config.verifier.clone()).layer(handler.clone());
    let tenants = VerifyWebhookLayer::new(config.tenants.clone()).layer(handler);
    let listener = config.listen_or_exit().await;
    // SIGTERM/SIGINT: stop accepting, let open connections finish their
    // deliveries (up to 30 s), exit.
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (webhook, tenants, health, console) = (
            webhook.clone(),
            tenants.clone(),
            health.clone(),
            console.clone(),
        );
        // Routing is the application's: only the webhook routes are verified.
        let app = service_fn(move |req: Request<hyper::body::Incoming>| {
            let (mut webhook, mut tenants, health, console) = (
                webhook.clone(),
                tenants.clone(),
                health.clone(),
                console.clone(),
            );
            async move {
                let path = req.uri().path();
                let under = |base: &str| {
                    path.strip_prefix(base)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                };
                if let (true, Some(mut console)) = (under(CONSOLE_ROUTE), console) {
                    let Ok(resp) = console.call(req).await;
                    return Ok(resp.map(Either::Right));
                }
                if path == METRICS_ROUTE && req.method() == Method::GET {
                    let mut resp = Response::new(Full::new(Bytes::from(render_metrics())));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(METRICS_CONTENT_TYPE),
                    );
                    return Ok(resp.map(Either::Right));
                }
                if path == HEALTH_ROUTE && req.method() == Method::GET {
                    let (status, body) = health.health().await;
                    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *resp.status_mut() = StatusCode::from_u16(status).expect("200 or 503");
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    return Ok(resp.map(Either::Right));
                }
                if path == PLAIN_ROUTE && req.method() == Method::POST {
                    // A baseline for load comparisons: reads the same body, verifies nothing.
                    let _ = req.into_body().collect().await;
                    return Ok(empty(StatusCode::NO_CONTENT).map(Either::Right));
                }
                let route = if path == WEBHOOK_ROUTE {
                    &mut webhook
                } else if is_tenant_route(path) {
                    &mut tenants
                } else {
                    return Ok(empty(StatusCode::NOT_FOUND).map(Either::Right));
                };
                if req.method() != Method::POST {
                    return Ok(empty(StatusCode::METHOD_NOT_ALLOWED).map(Either::Right));
                }
                route.call(req).await
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("shutting down: connections still open after 30 s");
    }
    workers.shutdown().await;
}
