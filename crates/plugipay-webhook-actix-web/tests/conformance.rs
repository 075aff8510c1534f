//! The shared conformance suite against a real actix-web server on a local port.

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use plugipay_webhook_actix_web::VerifiedEvent;
use plugipay_webhook_conformance::plumbing::local_listener;
use plugipay_webhook_conformance::{run, Adapter, Recorder, Source};

async fn hook(recorder: web::Data<Recorder>, event: VerifiedEvent) -> HttpResponse {
    recorder.record(&event);
    HttpResponse::NoContent().finish()
}

struct ActixWeb;

impl Adapter for ActixWeb {
    fn name(&self) -> &'static str {
        "actix-web"
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
        let (listener, addr) = local_listener();
        let prefix = prefix.to_owned();
        std::thread::spawn(move || {
            let recorder = web::Data::new(recorder);
            let verifiers = web::Data::new(verifiers);
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(recorder.clone())
                        .app_data(verifiers.clone())
                        .service(web::scope(&prefix).default_service(web::post().to(hook)))
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("serve");
            });
        });
        Some(addr)
    }

    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr {
        let (listener, addr) = local_listener();
        std::thread::spawn(move || {
            let recorder = web::Data::new(recorder);
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let app = App::new().app_data(recorder.clone());
                    // A single verifier bare, tenants in web::Data: both are
                    // found. Without one, nothing is registered: the
                    // extractor must answer 500.
                    let app = match &source {
                        Source::Verifier(v) => app.app_data(v.clone()),
                        Source::Verifiers(v) => app.app_data(web::Data::new(v.clone())),
                        Source::None => app,
                    };
                    app.default_service(web::post().to(hook))
                })
                .workers(2)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("serve");
            });
        });
        addr
    }

    fn sends_continue_before_handlers(&self) -> bool {
        // actix-http answers `Expect: 100-continue` in its expect handler,
        // set on the HTTP service, before any extractor runs.
        true
    }
}

#[test]
fn actix_web_extractor_passes_the_conformance_suite() {
    run(&ActixWeb).assert_all_passed();
}

#[actix_web::test]
async fn a_verifier_registered_in_web_data_is_found_too() {
    use actix_web::test;
    use plugipay_webhook::{testing::TestDelivery, Verifier};
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(Verifier::new("whsec_data")))
            .app_data(web::Data::new(Recorder::default()))
            .route("/hook", web::post().to(hook)),
    )
    .await;
    let delivery = TestDelivery::new("whsec_data", "plugipay.invoice.paid.v1");
    let req = plugipay_webhook_actix_web::testing::request(delivery, "/hook").to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 204);
}
