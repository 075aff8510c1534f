//! A signed request for `warp::test` (feature `testing`).

use plugipay_webhook::testing::TestDelivery;

/// `delivery` as a `POST` to `path` in `warp::test`'s request builder: the
/// body, its signature and `Content-Type: application/json`.
///
/// ```
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
/// use plugipay_webhook_warp::{recover, testing, verified_event, VerifiedEvent};
/// use warp::Filter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let hook = verified_event(Verifier::new("whsec_test"))
///     .map(|_event: VerifiedEvent| warp::http::StatusCode::NO_CONTENT)
///     .recover(recover);
/// let delivery = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1");
/// let resp = testing::request(delivery, "/hook").reply(&hook).await;
/// assert_eq!(resp.status(), 204);
/// # }
/// ```
pub fn request(delivery: TestDelivery, path: &str) -> warp::test::RequestBuilder {
    let (body, signature) = delivery.into_parts();
    warp::test::request()
        .method("POST")
        .path(path)
        .header(plugipay_webhook::SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(body)
}
