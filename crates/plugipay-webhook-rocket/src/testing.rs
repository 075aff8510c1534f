//! Signed requests for Rocket's `local` clients.

use plugipay_webhook::testing::TestDelivery;
use rocket::http::{ContentType, Header};
use rocket::local::{asynchronous, blocking};

/// `delivery` as a `POST` to `uri` on a blocking local client.
///
/// ```
/// use rocket::http::Status;
/// use rocket::local::blocking::Client;
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
/// use plugipay_webhook_rocket::{catchers, testing, VerifiedEvent};
///
/// #[rocket::post("/hook", data = "<_event>")]
/// fn hook(_event: VerifiedEvent) -> Status { Status::NoContent }
///
/// let client = Client::tracked(
///     rocket::build().manage(Verifier::new("whsec_test")).mount("/", rocket::routes![hook]).register("/", catchers()),
/// ).unwrap();
/// let delivery = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1");
/// assert_eq!(testing::blocking(&client, delivery, "/hook").dispatch().status(), Status::NoContent);
/// ```
#[must_use]
pub fn blocking<'c>(
    client: &'c blocking::Client,
    delivery: TestDelivery,
    uri: &str,
) -> blocking::LocalRequest<'c> {
    let (body, signature) = delivery.into_parts();
    client
        .post(uri.to_owned())
        .header(Header::new(plugipay_webhook::SIGNATURE_HEADER, signature))
        .header(ContentType::JSON)
        .body(body)
}

/// `delivery` as a `POST` to `uri` on an asynchronous local client.
#[must_use]
pub fn asynchronous<'c>(
    client: &'c asynchronous::Client,
    delivery: TestDelivery,
    uri: &str,
) -> asynchronous::LocalRequest<'c> {
    let (body, signature) = delivery.into_parts();
    client
        .post(uri.to_owned())
        .header(Header::new(plugipay_webhook::SIGNATURE_HEADER, signature))
        .header(ContentType::JSON)
        .body(body)
}
