//! The shared conformance suite against the tower layer: under plain hyper,
//! and as an axum `route_layer`, each on a real local port.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::{run, Adapter, Recorder, WEBHOOK_PATH};
use plugipay_webhook_tower::VerifyWebhookLayer;
use tower::{service_fn, Layer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bind() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    (listener, addr)
}

struct PlainHyper;

impl Adapter for PlainHyper {
    fn name(&self) -> &'static str {
        "tower (plain hyper)"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let verifier = verifier.expect("a layer is always built with its verifier");
        let (listener, addr) = bind();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let svc = VerifyWebhookLayer::new(verifier).layer(service_fn(
                    move |req: Request<Full<Bytes>>| {
                        let recorder = recorder.clone();
                        async move {
                            if let Some(event) = req.extensions().get::<WebhookEvent>() {
                                recorder.record(event);
                            }
                            let mut resp = Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = StatusCode::NO_CONTENT;
                            Ok::<_, Infallible>(resp)
                        }
                    },
                ));
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
            });
        });
        addr
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`VerifyWebhookLayer::new` takes the verifier: a layer without one cannot be built")
    }
}

struct AxumRouteLayer;

impl Adapter for AxumRouteLayer {
    fn name(&self) -> &'static str {
        "tower (axum route_layer)"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let verifier = verifier.expect("a layer is always built with its verifier");
        let app = Router::new()
            .route(
                WEBHOOK_PATH,
                post(
                    move |Extension(event): Extension<WebhookEvent>| async move {
                        recorder.record(&event);
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .route_layer(VerifyWebhookLayer::new(verifier));
        let (listener, addr) = bind();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        addr
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`VerifyWebhookLayer::new` takes the verifier: a layer without one cannot be built")
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
