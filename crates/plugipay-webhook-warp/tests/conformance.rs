//! The shared conformance suite against a real warp server on a local port.

use std::net::SocketAddr;
use std::sync::Arc;

use plugipay_webhook::http::VerifierSource;
use plugipay_webhook::Verifier;
use plugipay_webhook_conformance::plumbing::serve_on_thread;
use plugipay_webhook_conformance::{run, Adapter, Recorder, Source};
use plugipay_webhook_warp::{recover, verified_event, VerifiedEvent};
use warp::http::StatusCode;
use warp::Filter;

struct Warp;

impl Adapter for Warp {
    fn name(&self) -> &'static str {
        "warp"
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
        let segment: &'static str =
            Box::leak(prefix.trim_start_matches('/').to_owned().into_boxed_str());
        let source: Arc<dyn VerifierSource> = Arc::new(verifiers);
        let routes = warp::path(segment)
            .and(warp::post())
            .and(verified_event(source))
            .map(move |event: VerifiedEvent| {
                recorder.record(&event);
                StatusCode::NO_CONTENT
            })
            .recover(recover);
        Some(serve_on_thread(|listener| async move {
            warp::serve(routes).incoming(listener).run().await;
        }))
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let source: Arc<dyn VerifierSource> = match source {
            Source::Verifier(v) => Arc::new(v),
            Source::Verifiers(v) => Arc::new(v),
            Source::None => unreachable!("verified_event(source) cannot exist without one"),
        };
        let webhook = warp::post()
            .and(verified_event(source))
            .map(move |event: VerifiedEvent| {
                recorder.record(&event);
                StatusCode::NO_CONTENT
            })
            .recover(recover);
        // Another route behind `.or()`: a rejected delivery must not reach it.
        let fallback = warp::any().map(|| StatusCode::IM_A_TEAPOT);
        let routes = webhook.or(fallback);
        serve_on_thread(|listener| async move {
            warp::serve(routes).incoming(listener).run().await;
        })
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`verified_event(source)` takes the verifier source: the filter cannot exist without one")
    }
}

#[test]
fn warp_filter_passes_the_conformance_suite() {
    run(&Warp).assert_all_passed();
}

#[tokio::test]
async fn recover_hands_other_rejections_on_unchanged() {
    let route = warp::path("webhook")
        .and(verified_event(Verifier::new("whsec_x")))
        .map(|_: VerifiedEvent| StatusCode::NO_CONTENT)
        .recover(recover);
    // A path that does not match: warp's own 404, not our JSON.
    let resp = warp::test::request().path("/elsewhere").reply(&route).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(resp.body()).contains("error"));
    // Our own rejection: the shared JSON.
    let resp = warp::test::request()
        .method("POST")
        .path("/webhook")
        .body("{}")
        .reply(&route)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.body().as_ref(), br#"{"error":"signature_missing"}"#);
}
