//! The one call every adapter makes (feature `tokio`).

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use tracing::Instrument;

use super::body::content_length;
use super::{BodyCollector, Rejection, RequestHead, VerifierSource};
use crate::{SignatureHeader, WebhookEvent, SIGNATURE_HEADER};

/// Receives one delivery: the whole of section 6 of the contract, in its
/// order, for an adapter that hands over what its framework has — where the
/// verifier comes from, the request head and the raw body stream.
///
/// 1. No verifier source → `500 verifier_missing` (and one error log line);
///    a per-request source that has no verifier for this request → `404
///    endpoint_unknown`; whose lookup failed → `503 verifier_unavailable`.
/// 2. A secret configured, then the header rules on every
///    `X-Plugipay-Signature` value → `400 signature_missing` / `_malformed`.
/// 3. A declared `Content-Length` above the body limit → `413`, before the
///    body is touched.
/// 4. The raw chunks — never decoded — up to the limit (`413`), within the
///    read deadline (`408 body_timeout`); a failing stream is `400
///    body_read_failed`.
/// 5. Signature, freshness, envelope → `400 signature_…`.
///
/// Steps 1–3 run before the body stream is polled, so a hyper-based server
/// answers an `Expect: 100-continue` request that fails them with the final
/// status instead of `100 Continue`. The head is read before this function
/// returns; the future owns what it needs (it borrows nothing). A body
/// arriving as one chunk is kept without a copy.
///
/// Each delivery runs in a `plugipay_webhook.delivery` span (`info`) with
/// `id`, `event_type`, `matched_secret` and `outcome` (`verified` or the
/// error code), which the event keeps ([`WebhookEvent::span`]) so dispatch
/// and handler logs join it; and counts in the `metrics` counter
/// `plugipay_webhook_deliveries_total{outcome}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use plugipay_webhook::http::{receive, HttpHead};
/// use plugipay_webhook::{testing::TestDelivery, Verifier};
///
/// let verifier = Verifier::new("whsec_test");
/// let (body, signature) = TestDelivery::new("whsec_test", "plugipay.payout.paid.v1").into_parts();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-plugipay-signature", signature.parse().unwrap());
/// let chunks = one_chunk(body);
///
/// let event = receive(Some(&verifier), &HttpHead::new("/webhooks/plugipay", &headers), chunks)
///     .await
///     .unwrap();
/// assert_eq!(event.event_type(), "plugipay.payout.paid.v1");
/// # }
/// # fn one_chunk(b: bytes::Bytes) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
/// #     struct One(Option<bytes::Bytes>);
/// #     impl futures_core::Stream for One {
/// #         type Item = Result<bytes::Bytes, std::io::Error>;
/// #         fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
/// #             std::task::Poll::Ready(self.0.take().map(Ok))
/// #         }
/// #     }
/// #     One(Some(b))
/// # }
/// ```
pub fn receive<S, D, E>(
    source: Option<&dyn VerifierSource>,
    head: &dyn RequestHead,
    body: S,
) -> impl Future<Output = Result<WebhookEvent, Rejection>>
where
    S: Stream<Item = Result<D, E>>,
    D: Buf,
{
    let selection = source.map(|s| s.select(head));
    let values = head.header_values(SIGNATURE_HEADER);
    let header = SignatureHeader::from_values(values.iter());
    // Kept in the event (a durable inbox stores it): one value, valid text.
    let signature: Option<Box<str>> = header
        .as_ref()
        .ok()
        .and(values.first())
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(Into::into);
    let declared = head
        .header_values("content-length")
        .first()
        .and_then(content_length);
    let limit_override = head.body_limit();
    let span = tracing::info_span!(
        "plugipay_webhook.delivery",
        id = tracing::field::Empty,
        event_type = tracing::field::Empty,
        matched_secret = tracing::field::Empty,
        outcome = tracing::field::Empty,
        dispatch = tracing::field::Empty,
    );
    let received = async move {
        let Some(selection) = selection else {
            tracing::error!(
                "plugipay webhook: no Verifier is configured for this route; answering 500 verifier_missing"
            );
            return Err(Rejection::VerifierMissing);
        };
        let verifier = selection.resolve().await?;
        let header = verifier.check_parsed(header)?;
        let limits = verifier.limits();
        let limit = limit_override.unwrap_or(limits.body_limit);
        if declared.is_some_and(|n| n > limit as u64) {
            tracing::debug!(
                content_length = declared,
                limit,
                "plugipay webhook rejected: body too large"
            );
            return Err(Rejection::PayloadTooLarge);
        }
        let body = tokio::time::timeout(limits.read_timeout, collect(body, limit, declared))
            .await
            .map_err(|_| {
                tracing::debug!("plugipay webhook rejected: body read deadline passed");
                Rejection::BodyTimeout
            })??;
        Ok(verifier.verify_received(body, &header, signature)?)
    };
    async move {
        let result = received.await;
        let span = tracing::Span::current();
        let outcome = match &result {
            Ok(event) => {
                span.record("id", event.id());
                span.record("event_type", event.event_type());
                span.record("matched_secret", event.matched_secret());
                "verified"
            }
            Err(rejection) => rejection.code(),
        };
        span.record("outcome", outcome);
        metrics::counter!("plugipay_webhook_deliveries_total", "outcome" => outcome).increment(1);
        result
    }
    .instrument(span)
}

async fn collect<S, D, E>(body: S, limit: usize, declared: Option<u64>) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<D, E>>,
    D: Buf,
{
    let mut body = pin!(body);
    let mut collector = BodyCollector::new(limit, declared);
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk.map_err(|_| {
            tracing::debug!("plugipay webhook rejected: the body stream failed");
            Rejection::BodyReadFailed
        })?;
        let len = chunk.remaining();
        collector.push(chunk.copy_to_bytes(len))?;
    }
    Ok(collector.finish())
}

/// A body that is a reader (Rocket's `DataStream`, any `tokio` `AsyncRead`)
/// as the chunk stream [`receive`] takes. Reads up to 16 KiB at a time.
#[derive(Debug)]
pub struct ReaderStream<R> {
    reader: R,
    buf: BytesMut,
}

const READ_CHUNK: usize = 16 * 1024;

impl<R> ReaderStream<R> {
    /// A stream over `reader`.
    pub fn new(reader: R) -> ReaderStream<R> {
        ReaderStream {
            reader,
            buf: BytesMut::new(),
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> Stream for ReaderStream<R> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.buf.len() < READ_CHUNK {
            this.buf.resize(READ_CHUNK, 0);
        }
        let mut read = tokio::io::ReadBuf::new(&mut this.buf[..]);
        match Pin::new(&mut this.reader).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(this.buf.split_to(n).freeze())))
                }
            }
        }
    }
}
