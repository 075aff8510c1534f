//! Collecting a body under the limit.

use bytes::{Bytes, BytesMut};

use super::Rejection;

/// The most a [`BodyCollector`] reserves up front from a declared
/// `Content-Length`: a syntactically valid header must not make the server
/// commit a megabyte per connection before any byte arrives. Past this the
/// buffer grows as the body does.
pub const INITIAL_BUFFER_CAP: usize = 64 * 1024;

/// Parses a request's `Content-Length` value (raw header bytes), the one
/// way for every adapter: ASCII digits, optional surrounding whitespace;
/// anything else is `None` (the HTTP server has rejected such requests
/// already).
#[cfg(any(test, feature = "tokio"))]
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Collects a body from a framework's chunk stream, never holding more than
/// the limit: the chunk that would cross it is refused with
/// [`Rejection::PayloadTooLarge`]. A body that arrives as one chunk is kept
/// without a copy.
///
/// ```
/// use bytes::Bytes;
/// use plugipay_webhook::http::{BodyCollector, Rejection};
///
/// let mut body = BodyCollector::new(8, None);
/// body.push(Bytes::from_static(b"1234"))?;
/// body.push(Bytes::from_static(b"5678"))?; // exactly the limit: fine
/// assert!(matches!(body.push(Bytes::from_static(b"9")), Err(Rejection::PayloadTooLarge)));
/// # Ok::<(), Rejection>(())
/// ```
///
/// Its `Debug` shows the limit and the length collected, never the bytes.
pub struct BodyCollector {
    limit: usize,
    hint: usize,
    len: usize,
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl std::fmt::Debug for BodyCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCollector")
            .field("limit", &self.limit)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl BodyCollector {
    /// A collector for at most `limit` bytes; `content_length`, when the
    /// request declared one (already checked against the limit), sizes the
    /// buffer — up to [`INITIAL_BUFFER_CAP`].
    #[must_use]
    pub fn new(limit: usize, content_length: Option<u64>) -> BodyCollector {
        let hint = content_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(limit)
            .min(INITIAL_BUFFER_CAP);
        BodyCollector {
            limit,
            hint,
            len: 0,
            first: None,
            rest: None,
        }
    }

    /// Bytes the copy buffer has room for (0 until a copy is needed).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.rest.as_ref().map_or(0, BytesMut::capacity)
    }

    /// Bytes collected so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was collected yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a chunk; `Err(PayloadTooLarge)` when it would cross the limit.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), Rejection> {
        self.grow(chunk.len())?;
        if chunk.is_empty() {
            return Ok(());
        }
        if self.first.is_none() && self.rest.is_none() {
            self.first = Some(chunk);
        } else {
            self.buffer().extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// The copy buffer, created on the second chunk (or the first borrowed
    /// one) with room for the declared length.
    fn buffer(&mut self) -> &mut BytesMut {
        let hint = self.hint.max(self.len);
        let first = self.first.take();
        let buf = self
            .rest
            .get_or_insert_with(|| BytesMut::with_capacity(hint));
        if let Some(first) = first {
            buf.extend_from_slice(&first);
        }
        buf
    }

    /// Adds a borrowed chunk (copied); `Err(PayloadTooLarge)` when it would
    /// cross the limit.
    pub fn push_slice(&mut self, chunk: &[u8]) -> Result<(), Rejection> {
        self.grow(chunk.len())?;
        self.buffer().extend_from_slice(chunk);
        Ok(())
    }

    fn grow(&mut self, by: usize) -> Result<(), Rejection> {
        match self.len.checked_add(by) {
            Some(n) if n <= self.limit => {
                self.len = n;
                Ok(())
            }
            _ => {
                tracing::debug!(
                    limit = self.limit,
                    "plugipay webhook rejected: body too large"
                );
                Err(Rejection::PayloadTooLarge)
            }
        }
    }

    /// The collected body.
    #[must_use]
    pub fn finish(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(buf)) => buf.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_keeps_order_across_chunk_kinds() {
        let mut c = BodyCollector::new(100, Some(9));
        c.push(Bytes::from_static(b"abc")).unwrap();
        c.push_slice(b"def").unwrap();
        c.push(Bytes::from_static(b"")).unwrap();
        c.push(Bytes::from_static(b"ghi")).unwrap();
        assert_eq!(c.len(), 9);
        assert_eq!(&c.finish()[..], b"abcdefghi");
    }

    #[test]
    fn single_chunk_is_not_copied() {
        let chunk = Bytes::from(vec![7u8; 64]);
        let ptr = chunk.as_ptr();
        let mut c = BodyCollector::new(64, None);
        c.push(chunk).unwrap();
        assert_eq!(c.finish().as_ptr(), ptr);
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b" 1024 "), Some(1024));
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"1e3"), None);
    }

    #[test]
    fn a_declared_length_reserves_at_most_the_initial_cap() {
        let mut c = BodyCollector::new(1 << 20, Some(1 << 20));
        c.push_slice(b"x").unwrap();
        assert!(c.capacity() <= INITIAL_BUFFER_CAP, "{}", c.capacity());
    }
}
