//! The shared conformance suite against a real warp server on a local port.

use std::net::SocketAddr;

use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_conformance::{run, Adapter, Recorder};
use plugipay_webhook_warp::{recover, verified_event};
use warp::http::StatusCode;
use warp::Filter;

struct Warp;

impl Adapter for Warp {
    fn name(&self) -> &'static str {
        "warp"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let verifier = verifier.expect("verified_event(verifier) always has its verifier");
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
                let webhook = warp::post()
                    .and(warp::path("webhook"))
                    .and(warp::path::end())
                    .and(verified_event(verifier))
                    .map(move |event: WebhookEvent| {
                        recorder.record(&event);
                        StatusCode::NO_CONTENT
                    })
                    .recover(recover);
                // Another route behind `.or()`: a rejected delivery must not reach it.
                let fallback = warp::any().map(|| StatusCode::IM_A_TEAPOT);
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                warp::serve(webhook.or(fallback))
                    .incoming(listener)
                    .run()
                    .await;
            });
        });
        addr
    }

    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        Some("`verified_event(verifier)` takes the verifier: the filter cannot exist without one")
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
        .map(|_: WebhookEvent| StatusCode::NO_CONTENT)
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
