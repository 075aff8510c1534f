//! The shared conformance suite against a real actix-web server on a local port.

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use plugipay_webhook::Verifier;
use plugipay_webhook_actix_web::VerifiedEvent;
use plugipay_webhook_conformance::{run, Adapter, Recorder, WEBHOOK_PATH};

async fn hook(recorder: web::Data<Recorder>, event: VerifiedEvent) -> HttpResponse {
    recorder.record(&event);
    HttpResponse::NoContent().finish()
}

struct ActixWeb;

impl Adapter for ActixWeb {
    fn name(&self) -> &'static str {
        "actix-web"
    }

    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let verifier = verifier.map(web::Data::new);
            let recorder = web::Data::new(recorder);
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    let app = App::new().app_data(recorder.clone());
                    // Without a verifier, nothing is registered: the extractor must answer 500.
                    let app = match &verifier {
                        Some(v) => app.app_data(v.clone()),
                        None => app,
                    };
                    app.route(WEBHOOK_PATH, web::post().to(hook))
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
}

#[test]
fn actix_web_extractor_passes_the_conformance_suite() {
    run(&ActixWeb).assert_all_passed();
}
