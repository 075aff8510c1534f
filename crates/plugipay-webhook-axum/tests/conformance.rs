//! The shared conformance suite against a real axum server on a local port.

use std::net::SocketAddr;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use plugipay_webhook::http::Verifiers;
use plugipay_webhook::Verifier;
use plugipay_webhook_axum::VerifiedEvent;
use plugipay_webhook_conformance::plumbing::serve_on_thread;
use plugipay_webhook_conformance::{run, Adapter, Recorder, Source};

#[derive(Clone, FromRef)]
struct One {
    verifier: Verifier,
    recorder: Recorder,
}

#[derive(Clone, FromRef)]
struct Many {
    verifiers: Verifiers,
    recorder: Recorder,
}

async fn hook<V>(State(recorder): State<Recorder>, event: VerifiedEvent<V>) -> StatusCode {
    recorder.record(&event);
    StatusCode::NO_CONTENT
}

struct Axum;

impl Adapter for Axum {
    fn name(&self) -> &'static str {
        "axum"
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let app = match source {
            Source::Verifier(verifier) => Router::new()
                .route("/{*path}", post(hook::<Verifier>))
                .with_state(One { verifier, recorder }),
            Source::Verifiers(verifiers) => Router::new()
                .route("/{*path}", post(hook::<Verifiers>))
                .with_state(Many {
                    verifiers,
                    recorder,
                }),
            Source::None => unreachable!("axum rules out a missing verifier at compile time"),
        };
        serve_on_thread(|listener| async move {
            axum::serve(listener, app).await.expect("serve");
        })
    }

    fn start_mounted(
        &self,
        prefix: &str,
        source: Source,
        recorder: Recorder,
    ) -> Option<SocketAddr> {
        let Source::Verifiers(verifiers) = source else {
            unreachable!("the mounted server chooses per tenant")
        };
        let inner = Router::new()
            .route("/{*path}", post(hook::<Verifiers>))
            .with_state(Many {
                verifiers,
                recorder,
            });
        let app = Router::new().nest(prefix, inner);
        Some(serve_on_thread(|listener| async move {
            axum::serve(listener, app).await.expect("serve");
        }))
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`V: FromRef<S>` makes a router without a verifier source a compile error")
    }
}

#[test]
fn axum_extractor_passes_the_conformance_suite() {
    run(&Axum).assert_all_passed();
}
