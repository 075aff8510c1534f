//! A signed request for `actix_web::test`.

use actix_web::test::TestRequest;
use plugipay_webhook::testing::TestDelivery;

/// `delivery` as a `POST` to `uri` in actix-web's `TestRequest`: the body,
/// its signature and `Content-Type: application/json`.
///
/// ```
/// use actix_web::{test, web, App, HttpResponse};
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
/// use plugipay_webhook_actix_web::{testing, VerifiedEvent};
///
/// async fn hook(_event: VerifiedEvent) -> HttpResponse { HttpResponse::NoContent().finish() }
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(
///     App::new().app_data(Verifier::new("whsec_test")).route("/hook", web::post().to(hook)),
/// )
/// .await;
/// let delivery = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1");
/// let resp = test::call_service(&app, testing::request(delivery, "/hook").to_request()).await;
/// assert_eq!(resp.status(), 204);
/// # });
/// ```
#[must_use]
pub fn request(delivery: TestDelivery, uri: &str) -> TestRequest {
    let (body, signature) = delivery.into_parts();
    TestRequest::post()
        .uri(uri)
        .insert_header((plugipay_webhook::SIGNATURE_HEADER, signature))
        .insert_header(("content-type", "application/json"))
        .set_payload(body)
}
