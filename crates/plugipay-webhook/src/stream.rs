//! Reading a request body stream under the verifier's limits (feature `tokio`).

use std::future::poll_fn;
use std::pin::pin;

use bytes::Buf;
use futures_core::Stream;

use crate::{BodyCollector, Rejection, SignatureHeader, Verifier, WebhookEvent};

/// SPEC.md section 6 steps 4–6 for an adapter whose framework exposes the body
/// as a stream of chunks: read the raw chunks (never decoded) up to the body
/// limit (`413`), within the read deadline (`408`), then verify signature,
/// freshness and envelope (`400`).
///
/// Call it after [`Verifier::precheck`] accepted the headers; `declared` is
/// the request's `Content-Length`, if any. A body arriving in one chunk is
/// kept without a copy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use plugipay_webhook::{read_and_verify, testing::TestDelivery, Bytes, Verifier};
///
/// let verifier = Verifier::new("whsec_test");
/// let (body, header) = TestDelivery::new("whsec_test", "plugipay.payout.paid.v1").into_parts();
/// let signature = verifier.precheck([header.as_bytes()], Some(body.len() as u64)).unwrap();
/// let chunks = futures_util_free_stream(vec![Ok::<_, std::io::Error>(body)]);
/// let event = read_and_verify(&verifier, &signature, None, chunks).await.unwrap();
/// assert_eq!(event.event_type(), "plugipay.payout.paid.v1");
/// # }
/// # fn futures_util_free_stream<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
/// #     struct Iter<T>(std::vec::IntoIter<T>);
/// #     impl<T: Unpin> futures_core::Stream for Iter<T> {
/// #         type Item = T;
/// #         fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
/// #             std::task::Poll::Ready(self.0.next())
/// #         }
/// #     }
/// #     Iter(items.into_iter())
/// # }
/// ```
pub async fn read_and_verify<S, D, E>(
    verifier: &Verifier,
    signature: &SignatureHeader,
    declared: Option<u64>,
    body: S,
) -> Result<WebhookEvent, Rejection>
where
    S: Stream<Item = Result<D, E>>,
    D: Buf,
{
    let limits = verifier.limits();
    let read = async {
        let mut body = pin!(body);
        let mut collector = BodyCollector::new(limits.body_limit, declared);
        while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            let mut chunk = chunk.map_err(|_| {
                tracing::debug!("plugipay webhook rejected: the body stream failed");
                Rejection::BodyReadFailed
            })?;
            let len = chunk.remaining();
            collector.push(chunk.copy_to_bytes(len))?;
        }
        Ok::<_, Rejection>(collector.finish())
    };
    let body = tokio::time::timeout(limits.read_timeout, read)
        .await
        .map_err(|_| {
            tracing::debug!("plugipay webhook rejected: body read deadline passed");
            Rejection::BodyTimeout
        })??;
    verifier.complete(body, signature)
}
