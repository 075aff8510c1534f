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
    let span_tenant: Option<String> = selection
        .as_ref()
        .and_then(|s| s.tenant())
        .map(str::to_owned);
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
        tenant = tracing::field::Empty,
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
        let (verifier, tenant) = selection.resolve().await?;
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
        Ok(verifier.verify_received(body, &header, signature, tenant)?)
    };
    async move {
        let result = received.await;
        let span = tracing::Span::current();
        let outcome = match &result {
            Ok(event) => {
                span.record("id", event.id());
                span.record("event_type", event.event_type());
                span.record("matched_secret", event.matched_secret());
                if let Some(tenant) = event.tenant() {
                    span.record("tenant", tenant);
                }
                "verified"
            }
            Err(rejection) => {
                crate::report::rejected(rejection.code(), span_tenant.as_deref());
                rejection.code()
            }
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
/// as the chunk stream [`receive`] takes.
///
/// Reads straight into the spare capacity of one buffer — never zeroed,
/// never copied: with a size hint ([`with_size_hint`](Self::with_size_hint),
/// the declared `Content-Length`) the whole body arrives in one chunk of
/// exactly that size, which [`receive`] keeps as it is; the end is then
/// confirmed by a read into a few spare bytes. Without one (or past it) it
/// reads up to 16 KiB at a time.
#[derive(Debug)]
pub struct ReaderStream<R> {
    reader: R,
    buf: BytesMut,
    /// Bytes still expected by the hint.
    expected: usize,
    /// Whether the first (hint-sized) buffer was reserved.
    sized: bool,
    /// The reader reached its end.
    ended: bool,
}

const READ_CHUNK: usize = 16 * 1024;
/// Spare room for the read that confirms the end of a body of hinted size.
const END_PROBE: usize = 64;

impl<R> ReaderStream<R> {
    /// A stream over `reader`.
    pub fn new(reader: R) -> ReaderStream<R> {
        ReaderStream::with_size_hint(reader, None)
    }

    /// A stream over `reader` whose body is expected to be `len` bytes (the
    /// declared `Content-Length`; capped at [`INITIAL_BUFFER_CAP`], so a
    /// lying header costs no more than that). Only a hint: a body of any
    /// other length is read all the same.
    ///
    /// [`INITIAL_BUFFER_CAP`]: super::INITIAL_BUFFER_CAP
    pub fn with_size_hint(reader: R, len: Option<u64>) -> ReaderStream<R> {
        let expected = len.map_or(0, |n| {
            usize::try_from(n.min(super::INITIAL_BUFFER_CAP as u64)).unwrap_or(0)
        });
        ReaderStream {
            reader,
            buf: BytesMut::new(),
            expected,
            sized: false,
            ended: false,
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> Stream for ReaderStream<R> {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            if this.buf.capacity() == this.buf.len() {
                let room = if this.sized || this.expected == 0 {
                    READ_CHUNK
                } else {
                    // The hinted body and the few bytes that confirm its end,
                    // in one allocation.
                    this.expected + END_PROBE
                };
                this.sized = true;
                this.buf.reserve(room);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.reader), cx, &mut this.buf) {
                // What was read so far stays in the buffer for the next poll.
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(0)) => {
                    this.ended = true;
                    return Poll::Ready(if this.buf.is_empty() {
                        None
                    } else {
                        Some(Ok(this.buf.split().freeze()))
                    });
                }
                Poll::Ready(Ok(n)) => {
                    this.expected = this.expected.saturating_sub(n);
                    // Keep filling the same buffer: the body stays one chunk.
                    if this.expected > 0 && this.buf.capacity() > this.buf.len() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(this.buf.split().freeze())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes `step` at a time, `Pending` (and
    /// woken at once) between pieces, as a socket does.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
        pause: bool,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.pause {
                self.pause = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pause = true;
            let n = self
                .step
                .min(self.data.len() - self.at)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn chunks(data: &[u8], step: usize, hint: Option<u64>) -> Vec<Bytes> {
        let reader = Trickle {
            data: data.to_vec(),
            at: 0,
            step,
            pause: false,
        };
        let mut stream = pin!(ReaderStream::with_size_hint(reader, hint));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut out = Vec::new();
            while let Some(chunk) = poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                out.push(chunk.expect("read"));
            }
            out
        })
    }

    #[test]
    fn a_body_of_the_declared_length_arrives_as_one_chunk_however_it_trickles_in() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        for step in [1, 7, 1500, 16 * 1024, 20_000] {
            let got = chunks(&data, step, Some(20_000));
            assert_eq!(got.len(), 1, "step {step}");
            assert_eq!(got[0], data, "step {step}");
        }
    }

    #[test]
    fn every_byte_arrives_in_order_whatever_the_hint_says() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        for hint in [
            None,
            Some(0),
            Some(10),
            Some(69_999),
            Some(70_001),
            Some(u64::MAX),
        ] {
            for step in [1, 999, 16 * 1024, 70_000] {
                let got: Vec<u8> = chunks(&data, step, hint).concat();
                assert_eq!(got, data, "hint {hint:?}, step {step}");
            }
        }
        assert!(chunks(&[], 10, Some(0)).is_empty());
        assert!(chunks(&[], 10, None).is_empty());
    }
}
