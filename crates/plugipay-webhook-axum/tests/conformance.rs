//! The shared conformance suite against a real axum server on a local port.

use std::net::SocketAddr;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use plugipay_webhook::Verifier;
use plugipay_webhook_axum::VerifiedEvent;
use plugipay_webhook_conformance::{run, Adapter, Recorder, WEBHOOK_PATH};

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Verifier,
    recorder: Recorder,
}

async fn hook(State(recorder): State<Recorder>, event: VerifiedEvent) -> StatusCode {
    recorder.record(&event);
    StatusCode::NO_CONTENT
}

/// Serves `app` on 127.0.0.1 from a thread with its own runtime.
fn serve(app: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    addr
}

struct Axum;

impl Adapter for Axum {
    fn name(&self) -> &'static str {
        "axum"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let verifier = verifier.expect("axum rules out a missing verifier at compile time");
        let app = Router::new()
            .route(WEBHOOK_PATH, post(hook))
            .with_state(AppState { verifier, recorder });
        serve(app)
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`Verifier: FromRef<S>` makes a router without a verifier a compile error")
    }
}

#[test]
fn axum_extractor_passes_the_conformance_suite() {
    run(&Axum).assert_all_passed();
}
