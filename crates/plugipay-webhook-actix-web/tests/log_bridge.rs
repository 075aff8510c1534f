//! actix-web applications usually log through the `log` crate: with no
//! `tracing` subscriber installed, the adapter's events reach `log`.

use std::sync::Mutex;

use actix_web::{test, web, App, HttpResponse};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::Verifier;
use plugipay_webhook_actix_web::{testing, VerifiedEvent};

static RECORDS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

async fn hook(_event: VerifiedEvent) -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[actix_web::test]
async fn rejections_reach_a_log_logger_without_a_tracing_subscriber() {
    log::set_logger(&Capture).expect("the only logger");
    log::set_max_level(log::LevelFilter::Trace);
    let app = test::init_service(
        App::new()
            .app_data(Verifier::new("whsec_right"))
            .route("/hook", web::post().to(hook)),
    )
    .await;
    let forged = TestDelivery::new("whsec_wrong", "plugipay.invoice.paid.v1");
    let resp = test::call_service(&app, testing::request(forged, "/hook").to_request()).await;
    assert_eq!(resp.status(), 400);
    let records = RECORDS.lock().unwrap().join("\n");
    assert!(
        records.contains("DEBUG plugipay webhook rejected"),
        "{records}"
    );
    assert!(
        records.contains("INFO plugipay webhook rejected a delivery: signature_invalid"),
        "{records}"
    );
    assert!(!records.contains("whsec_"), "{records}");
}
