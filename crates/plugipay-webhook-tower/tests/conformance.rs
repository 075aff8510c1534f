//! The shared conformance suite against the tower layer: under plain hyper,
//! and as an axum `route_layer`, each on a real local port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use plugipay_webhook::http::VerifierSource;
use plugipay_webhook::WebhookEvent;
use plugipay_webhook_conformance::plumbing::serve_on_thread;
use plugipay_webhook_conformance::{run, Adapter, Recorder, Source};
use plugipay_webhook_tower::VerifyWebhookLayer;
use tower::{service_fn, Layer};

const RULED_OUT: &str =
    "`VerifyWebhookLayer::new` takes the verifier source: a layer without one cannot be built";

fn layer(source: Source) -> VerifyWebhookLayer {
    let source: Arc<dyn VerifierSource> = match source {
        Source::Verifier(v) => Arc::new(v),
        Source::Verifiers(v) => Arc::new(v),
        Source::None => unreachable!("{RULED_OUT}"),
    };
    VerifyWebhookLayer::new(source)
}

struct PlainHyper;

impl Adapter for PlainHyper {
    fn name(&self) -> &'static str {
        "tower (plain hyper)"
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let svc = layer(source).layer(service_fn(move |req: Request<Full<Bytes>>| {
            let recorder = recorder.clone();
            async move {
                if let Some(event) = req.extensions().get::<WebhookEvent>() {
                    recorder.record(event);
                }
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::NO_CONTENT;
                Ok::<_, Infallible>(resp)
            }
        }));
        serve_on_thread(move |listener| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let svc = TowerToHyperService::new(svc.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some(RULED_OUT)
    }
}

struct AxumRouteLayer;

impl Adapter for AxumRouteLayer {
    fn name(&self) -> &'static str {
        "tower (axum route_layer)"
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let app = Router::new()
            .route(
                "/{*path}",
                post(
                    move |Extension(event): Extension<WebhookEvent>| async move {
                        recorder.record(&event);
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .route_layer(layer(source));
        serve_on_thread(|listener| async move {
            axum::serve(listener, app).await.expect("serve");
        })
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some(RULED_OUT)
    }
}

#[test]
fn tower_layer_under_plain_hyper_passes_the_conformance_suite() {
    run(&PlainHyper).assert_all_passed();
}

#[test]
fn tower_layer_as_axum_route_layer_passes_the_conformance_suite() {
    run(&AxumRouteLayer).assert_all_passed();
}
