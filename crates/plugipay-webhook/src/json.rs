//! One validating pass over the body: RFC 8259 JSON, every string valid
//! Unicode, at most [`MAX_DEPTH`] levels, and the envelope's fields located
//! without building a tree (`docs/behaviour.md`, check 5).
//!
//! The scanner records where `id`, `type`, `account_id`, `occurred_at` and
//! `data.object` are in the body; the event later borrows them from the same
//! bytes. Keys are compared after unescaping, so `"\u0069d"` *is* `id` and a
//! second one is caught as a duplicate.

use std::ops::Range;

use crate::error::{Reason, SignatureError};

/// Deepest nesting accepted; the top-level object is level 1.
pub const MAX_DEPTH: usize = 64;

/// A string value's location in the body: the bytes between the quotes, and
/// whether they contain escapes (then they must be decoded before use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StrSpan {
    pub(crate) range: Range<usize>,
    pub(crate) escaped: bool,
}

/// Where the envelope's fields are in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) id: StrSpan,
    pub(crate) ty: StrSpan,
    pub(crate) account_id: Option<StrSpan>,
    pub(crate) occurred_at: Option<StrSpan>,
    /// The raw JSON text of `data.object`, `None` when `data` or `object` is
    /// absent or `null`.
    pub(crate) object: Option<Range<usize>>,
}

/// Which UTF-8 validator checks a body whose strings hold non-ASCII text.
///
/// Both accept exactly the same inputs (`tests` and the `scan` fuzz target
/// compare them); the scalar one is the reference and the only one without
/// the `simd` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Utf8 {
    /// `std::str::from_utf8`.
    Scalar,
    /// `simdutf8`: AVX2 or SSE4.2 when the CPU has them (detected at run
    /// time, once), NEON on aarch64, its own scalar code elsewhere.
    #[cfg(feature = "simd")]
    Simd,
}

impl Utf8 {
    /// The one `verify` uses.
    #[cfg(feature = "simd")]
    pub(crate) const DEFAULT: Utf8 = Utf8::Simd;
    /// The one `verify` uses.
    #[cfg(not(feature = "simd"))]
    pub(crate) const DEFAULT: Utf8 = Utf8::Scalar;

    fn valid(self, bytes: &[u8]) -> bool {
        match self {
            Utf8::Scalar => std::str::from_utf8(bytes).is_ok(),
            #[cfg(feature = "simd")]
            Utf8::Simd => simdutf8::basic::from_utf8(bytes).is_ok(),
        }
    }
}

/// Validates `body` as an envelope and locates its fields.
pub(crate) fn scan_envelope(body: &[u8]) -> Result<Envelope, SignatureError> {
    scan_envelope_with(body, Utf8::DEFAULT)
}

/// [`scan_envelope`] with the given UTF-8 validator.
///
/// UTF-8 is settled without a second look at ASCII bodies: outside strings
/// the grammar admits only ASCII, and a multi-byte sequence never holds a
/// quote, a backslash or a control byte, so the pass only notes whether any
/// string byte was non-ASCII. If one was, the body is valid exactly when it
/// is valid UTF-8 as a whole — one call over the whole body, where a SIMD
/// validator runs at many bytes per cycle.
pub(crate) fn scan_envelope_with(body: &[u8], utf8: Utf8) -> Result<Envelope, SignatureError> {
    let not_utf8 = || SignatureError::invalid(Reason::BodyNotUtf8);
    match scan(body) {
        Ok((envelope, false)) => Ok(envelope),
        Ok((envelope, true)) if utf8.valid(body) => Ok(envelope),
        Ok(_) => Err(not_utf8()),
        // On the error path: name the more useful reason.
        Err(_) if !utf8.valid(body) => Err(not_utf8()),
        Err(e) => Err(e),
    }
}

/// The envelope, and whether any string held a non-ASCII byte.
fn scan(body: &[u8]) -> Result<(Envelope, bool), SignatureError> {
    let mut p = Parser {
        b: body,
        i: 0,
        error: None,
        high: 0,
    };
    match p.document() {
        Ok(envelope) => Ok((envelope, p.high & HIGHS != 0)),
        Err(Stop) => Err(p
            .error
            .take()
            .unwrap_or_else(|| SignatureError::invalid(Reason::BodyNotJson("invalid JSON", 0)))),
    }
}

/// Decodes a JSON string span (with escapes) into an owned string.
pub(crate) fn unescape(body: &[u8], span: &StrSpan) -> String {
    let raw = &body[span.range.start - 1..span.range.end + 1];
    // The scanner has proven this is a valid JSON string; serde_json decodes
    // the escapes. A failure here would be a scanner bug: fall back to the
    // raw text rather than panic.
    serde_json::from_slice::<String>(raw)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[span.range.clone()]).into_owned())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Type,
    AccountId,
    OccurredAt,
    Data,
    Other,
}

impl Field {
    fn from_key(key: &[u8]) -> Field {
        match key {
            b"id" => Field::Id,
            b"type" => Field::Type,
            b"account_id" => Field::AccountId,
            b"occurred_at" => Field::OccurredAt,
            b"data" => Field::Data,
            _ => Field::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Type => "type",
            Field::AccountId => "account_id",
            Field::OccurredAt => "occurred_at",
            Field::Data => "data",
            Field::Other => "",
        }
    }
}

/// What kind of value was just parsed (only the distinctions the envelope needs).
enum Kind {
    Str(StrSpan),
    Null,
    Object,
    Other,
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    /// Why the scan stopped, once it has.
    error: Option<SignatureError>,
    /// Every string byte seen, OR-ed eight at a time: non-ASCII text shows
    /// as a high bit.
    high: u64,
}

/// The scan stopped; the reason is in [`Parser::error`]. A zero-sized error
/// keeps every `Result` of the hot path in registers (a `SignatureError`
/// returned through memory from each value cost a measurable share).
struct Stop;

// Byte classes for the string fast path: 1 = stop here (quote, backslash or a
// control character that JSON forbids unescaped).
static STOP: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 1;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t
};

// Hex digit values; 0x80 for any other byte.
static HEX: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl<'a> Parser<'a> {
    /// Records why the scan stops here; the caller returns `Err(Stop)`.
    #[cold]
    fn fail(&mut self, reason: Reason) -> Stop {
        self.error = Some(SignatureError::invalid(reason));
        Stop
    }

    #[cold]
    fn err(&mut self, what: &'static str) -> Stop {
        let at = self.i;
        self.fail(Reason::BodyNotJson(what, at))
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Stop> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// The whole body: one object, whitespace around it.
    fn document(&mut self) -> Result<Envelope, Stop> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Err(self.fail(Reason::NotAnObject));
        }
        let env = self.envelope()?;
        self.skip_ws();
        if self.i != self.b.len() {
            return Err(self.err("trailing characters"));
        }
        Ok(env)
    }

    /// The top-level object (level 1).
    fn envelope(&mut self) -> Result<Envelope, Stop> {
        self.i += 1; // '{'
        let mut id = None;
        let mut ty = None;
        let mut account_id: Option<Option<StrSpan>> = None;
        let mut occurred_at: Option<Option<StrSpan>> = None;
        let mut data: Option<Option<Range<usize>>> = None;

        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.skip_ws();
                let field = self.key(Field::from_key)?;
                self.expect(b':', "expected `:`")?;
                self.skip_ws();
                match field {
                    Field::Id | Field::Type => {
                        let slot = if field == Field::Id { &mut id } else { &mut ty };
                        if slot.is_some() {
                            return Err(self.fail(Reason::FieldRepeated(field.name())));
                        }
                        match self.value(2)? {
                            Kind::Str(s) => *slot = Some(s),
                            _ => {
                                return Err(
                                    self.fail(Reason::FieldWrongType(field.name(), "a string"))
                                )
                            }
                        }
                    }
                    Field::AccountId | Field::OccurredAt => {
                        let slot = if field == Field::AccountId {
                            &mut account_id
                        } else {
                            &mut occurred_at
                        };
                        if slot.is_some() {
                            return Err(self.fail(Reason::FieldRepeated(field.name())));
                        }
                        match self.value(2)? {
                            Kind::Str(s) => *slot = Some(Some(s)),
                            Kind::Null => *slot = Some(None),
                            _ => {
                                return Err(self.fail(Reason::FieldWrongType(
                                    field.name(),
                                    "a string or null",
                                )))
                            }
                        }
                    }
                    Field::Data => {
                        if data.is_some() {
                            return Err(self.fail(Reason::FieldRepeated("data")));
                        }
                        if self.peek() == Some(b'{') {
                            data = Some(self.data_object()?);
                        } else {
                            match self.value(2)? {
                                Kind::Null => data = Some(None),
                                _ => {
                                    return Err(self
                                        .fail(Reason::FieldWrongType("data", "an object or null")))
                                }
                            }
                        }
                    }
                    Field::Other => {
                        self.value(2)?;
                    }
                }
                if self.members_end()? {
                    break;
                }
            }
        }
        let Some(id) = id else {
            return Err(self.fail(Reason::FieldMissing("id")));
        };
        let Some(ty) = ty else {
            return Err(self.fail(Reason::FieldMissing("type")));
        };
        Ok(Envelope {
            id,
            ty,
            account_id: account_id.flatten(),
            occurred_at: occurred_at.flatten(),
            object: data.flatten(),
        })
    }

    /// `data` as an object (level 2): finds `object`, rejects a second one.
    fn data_object(&mut self) -> Result<Option<Range<usize>>, Stop> {
        self.i += 1; // '{'
        let mut object: Option<Option<Range<usize>>> = None;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(None);
        }
        loop {
            self.skip_ws();
            let is_object = self.key(|k| k == b"object")?;
            self.expect(b':', "expected `:`")?;
            self.skip_ws();
            let start = self.i;
            let kind = self.value(3)?;
            if is_object {
                if object.is_some() {
                    return Err(self.fail(Reason::FieldRepeated("data.object")));
                }
                object = Some(match kind {
                    Kind::Null => None,
                    _ => Some(start..self.i),
                });
            }
            if self.members_end()? {
                break;
            }
        }
        Ok(object.flatten())
    }

    /// After a member: `,` → more (false), `}` → done (true).
    #[inline]
    fn members_end(&mut self) -> Result<bool, Stop> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(b'}') => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(self.err("expected `,` or `}`")),
        }
    }

    /// An object key, classified by `classify` on its decoded text.
    fn key<T>(&mut self, classify: impl Fn(&[u8]) -> T) -> Result<T, Stop> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let span = self.string()?;
        if span.escaped {
            let text = unescape(self.b, &span);
            Ok(classify(text.as_bytes()))
        } else {
            Ok(classify(&self.b[span.range]))
        }
    }

    /// Any value; `depth` is the level a container starting here would be at.
    fn value(&mut self, depth: usize) -> Result<Kind, Stop> {
        match self.peek() {
            Some(b'"') => Ok(Kind::Str(self.string()?)),
            Some(b'{') => {
                self.object(depth)?;
                Ok(Kind::Object)
            }
            Some(b'[') => {
                self.array(depth)?;
                Ok(Kind::Other)
            }
            Some(b't') => self.literal(b"true").map(|()| Kind::Other),
            Some(b'f') => self.literal(b"false").map(|()| Kind::Other),
            Some(b'n') => self.literal(b"null").map(|()| Kind::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Kind::Other),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    /// Any value below the envelope's own fields: validated, nothing kept.
    fn skip(&mut self, depth: usize) -> Result<(), Stop> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(self.fail(Reason::BodyTooDeep(MAX_DEPTH)));
        }
        self.i += 1; // '{'
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            self.string()?;
            self.expect(b':', "expected `:`")?;
            self.skip_ws();
            self.skip(depth + 1)?;
            if self.members_end()? {
                return Ok(());
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(self.fail(Reason::BodyTooDeep(MAX_DEPTH)));
        }
        self.i += 1; // '['
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.skip(depth + 1)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Stop> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), Stop> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        // The decimal exponent of the leading significant digit, for the
        // range check below (0 for a zero significand).
        let mut lead: i64 = 0;
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                lead = self.digits() as i64 - 1;
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac = self.i;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
            if self.b[start..frac]
                .iter()
                .all(|&b| matches!(b, b'-' | b'0' | b'.'))
            {
                if let Some(k) = self.b[frac..self.i].iter().position(|&b| b != b'0') {
                    lead = -(k as i64) - 1;
                }
            }
        }
        let mut exponent: i64 = 0;
        let mut exponent_digits = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            let negative = match self.peek() {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let digits = self.i;
            exponent_digits = self.digits();
            if exponent_digits == 0 {
                return Err(self.err("invalid number"));
            }
            if exponent_digits <= 6 {
                exponent = self.b[digits..self.i]
                    .iter()
                    .fold(0, |n, &d| n * 10 + i64::from(d - b'0'));
                if negative {
                    exponent = -exponent;
                }
            }
        }
        // `object()` parses the body with serde_json, which refuses numbers
        // whose magnitude overflows f64 *as serde_json computes it* — and that
        // depends on its features (`float_roundtrip`, `arbitrary_precision`)
        // as the dependency graph enables them. So near the edge of f64's
        // range serde_json itself decides: acceptance agrees with it exactly.
        // Below 1e300 every configuration accepts, so that is the fast path.
        if exponent_digits > 6 || lead + exponent >= 300 {
            let text = &self.b[start..self.i];
            if serde_json::from_slice::<serde_json::Value>(text).is_err() {
                return Err(self.err("number out of range"));
            }
        }
        Ok(())
    }

    /// A string starting at the opening quote; returns the span between quotes.
    ///
    /// The common case — no escape before the closing quote, not within the
    /// body's last eight bytes — is inlined at every call; the rest goes
    /// out of line to [`Parser::string_rest`].
    #[inline(always)]
    fn string(&mut self) -> Result<StrSpan, Stop> {
        self.i += 1; // '"'
        let start = self.i;
        let mut seen = 0u64;
        if self.skip_to_stop(&mut seen) == Some(b'"') {
            self.high |= seen;
            let range = start..self.i;
            self.i += 1;
            return Ok(StrSpan {
                range,
                escaped: false,
            });
        }
        self.string_rest(start, seen)
    }

    /// Skips ordinary string bytes eight at a time from `self.i`, OR-ing
    /// them into `seen` (non-ASCII shows as a high bit), and stops at the
    /// first quote, backslash or control byte: returns it, taken from the
    /// word already in a register (the lowest flagged byte of the SWAR mask
    /// is exact). `None` when fewer than eight bytes are left before one.
    #[inline(always)]
    fn skip_to_stop(&mut self, seen: &mut u64) -> Option<u8> {
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            let Ok(word) = <[u8; 8]>::try_from(word) else {
                break;
            };
            let word = u64::from_le_bytes(word);
            let stops = stop_bytes(word);
            if stops == 0 {
                *seen |= word;
                self.i += 8;
                continue;
            }
            let k = stops.trailing_zeros() / 8;
            *seen |= word & !(u64::MAX << (8 * k));
            self.i += k as usize;
            return Some((word >> (8 * k)) as u8);
        }
        None
    }

    /// The rest of a string from `self.i` (`seen`: the bytes before it,
    /// OR-ed): escapes, control bytes, the body's last bytes.
    #[inline(never)]
    fn string_rest(&mut self, start: usize, mut seen: u64) -> Result<StrSpan, Stop> {
        let mut escaped = false;
        loop {
            let mut stop = self.skip_to_stop(&mut seen);
            if stop.is_none() {
                // The body's last seven bytes: one at a time.
                while let Some(&c) = self.b.get(self.i) {
                    if STOP[c as usize] != 0 {
                        break;
                    }
                    seen |= u64::from(c);
                    self.i += 1;
                }
                stop = self.peek();
            }
            match stop {
                Some(b'"') => {
                    let range = start..self.i;
                    self.high |= seen;
                    self.i += 1;
                    return Ok(StrSpan { range, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 1;
                    self.escape()?;
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self) -> Result<(), Stop> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.i += 1;
                Ok(())
            }
            Some(b'u') => {
                self.i += 1;
                let cp = self.hex4()?;
                match cp {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by `\u` + a low one.
                        if self.b[self.i..].starts_with(b"\\u") {
                            self.i += 2;
                            let low = self.hex4()?;
                            if (0xDC00..=0xDFFF).contains(&low) {
                                return Ok(());
                            }
                        }
                        Err(self.err("lone surrogate in string"))
                    }
                    0xDC00..=0xDFFF => Err(self.err("lone surrogate in string")),
                    _ => Ok(()),
                }
            }
            _ => Err(self.err("invalid escape")),
        }
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|d| <[u8; 4]>::try_from(d).ok());
        let Some(digits) = digits else {
            return Err(self.err("invalid \\u escape"));
        };
        let [a, b, c, d] = digits.map(|x| HEX[usize::from(x)]);
        if (a | b | c | d) & 0x80 != 0 {
            return Err(self.err("invalid \\u escape"));
        }
        self.i += 4;
        Ok(u32::from(a) << 12 | u32::from(b) << 8 | u32::from(c) << 4 | u32::from(d))
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is `"`, `\\` or below 0x20, and
/// maybe of bytes after the first such one (SWAR: a byte `b` is zero iff
/// `(b - 1) & !b` has its high bit set; a borrow only ever runs upwards, so
/// the lowest flagged byte is exactly the first stop byte, in little-endian
/// order, and the mask is zero exactly when there is none).
#[inline]
fn stop_bytes(x: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(x ^ (ONES * u64::from(b'"')));
    let backslash = zero(x ^ (ONES * u64::from(b'\\')));
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    quote | backslash | control
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Envelope {
        scan_envelope(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &[u8]) -> String {
        scan_envelope(s).unwrap_err().to_string()
    }

    fn nested(levels: usize) -> String {
        // Top-level object is level 1; `levels - 1` more arrays inside it.
        let inner = levels - 1;
        format!(
            r#"{{"id":"e","type":"t","x":{}{}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }

    /// Where the scanner takes the first stop byte of a word to be.
    fn first_stop(w: [u8; 8]) -> Option<usize> {
        let stops = stop_bytes(u64::from_le_bytes(w));
        (stops != 0).then(|| stops.trailing_zeros() as usize / 8)
    }

    fn is_stop(b: u8) -> bool {
        b == b'"' || b == b'\\' || b < 0x20
    }

    #[test]
    fn stop_byte_detection_is_exact() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                for fill in [b'a', 0x80, 0xff, 0x20, 0x21, 0x5d] {
                    let mut w = [fill; 8];
                    w[pos] = b;
                    let want = w.iter().position(|&c| is_stop(c));
                    assert_eq!(first_stop(w), want, "byte {b:#x} at {pos} in {fill:#x}");
                }
            }
        }
        assert_eq!(first_stop(*b"\xc3\xa9\xf0\x9f\x98\x80ab"), None);
        // Words with several stop bytes, and everything around them: the
        // first one is found, whatever follows (borrows run upwards only).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = [
            b'"',
            b'\\',
            0x00,
            0x1f,
            0x20,
            0x21,
            b'a',
            0x5c ^ 0x80,
            0x7f,
            0x80,
            0xa0,
            0xff,
        ];
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w: [u8; 8] = std::array::from_fn(|i| {
                let r = (x >> (i * 8)) as u8;
                if r & 1 == 0 {
                    alphabet[usize::from(r >> 1) % alphabet.len()]
                } else {
                    r
                }
            });
            assert_eq!(first_stop(w), w.iter().position(|&c| is_stop(c)), "{w:?}");
        }
    }

    #[test]
    fn hex_table_is_exact() {
        for b in 0u8..=255 {
            let want = (b as char).to_digit(16).map(|d| d as u8).unwrap_or(0x80);
            assert_eq!(HEX[usize::from(b)], want, "byte {b:#x}");
        }
        let body = br#"{"id":"\u00E9\uAbCd\u0041","type":"t"}"#;
        assert!(scan_envelope(body).is_ok());
        for body in [
            &br#"{"id":"\u00g9","type":"t"}"#[..],
            br#"{"id":"\u00"#,
            br#"{"id":"\u 123","type":"t"}"#,
        ] {
            assert!(bad(body).contains("escape"), "{}", bad(body));
        }
    }

    #[test]
    fn finds_the_fields() {
        let body = r#" {"x":[1,{"id":2}],"id":"evt_1","type":"a.b.v1","account_id":null,
            "occurred_at":"2026-01-01T00:00:00Z","data":{"other":1,"object":{"k":[true,false,null,-1.5e3]}}} "#;
        let e = ok(body);
        assert_eq!(&body[e.id.range.clone()], "evt_1");
        assert_eq!(&body[e.ty.range.clone()], "a.b.v1");
        assert_eq!(e.account_id, None);
        assert_eq!(&body[e.occurred_at.unwrap().range], "2026-01-01T00:00:00Z");
        assert_eq!(
            &body[e.object.unwrap()],
            r#"{"k":[true,false,null,-1.5e3]}"#
        );
    }

    #[test]
    fn escaped_keys_are_the_same_keys() {
        let s = br#"{"id":"a","type":"t","\u0069d":"b"}"#;
        assert!(bad(s).contains("`id` appears more than once"), "{}", bad(s));
        let s = br#"{"id":"a","type":"t","data":{"object":1,"obj\u0065ct":2}}"#;
        assert!(bad(s).contains("data.object"));
    }

    #[test]
    fn depth_limit_is_64_levels() {
        ok(&nested(64));
        assert!(bad(nested(65).as_bytes()).contains("nests more than 64"));
    }

    #[test]
    fn rejects_non_json() {
        for s in [
            &br#"{"id":"a","type":"t","n":NaN}"#[..],
            br#"{"id":"a","type":"t","n":Infinity}"#,
            br#"{"id":"a","type":"t","n":1e400}"#,
            br#"{"id":"a","type":"t","n":01}"#,
            br#"{"id":"a","type":"t","s":"\ud800"}"#,
            br#"{"id":"a","type":"t","s":"\udc00\ud800"}"#,
            br#"{"id":"a","type":"t","s":"\ud800\u0041"}"#,
            br#"{"id":"a","type":"t",}"#,
            br#"{"id":"a","type":"t"} x"#,
            b"{\"id\":\"a\",\"type\":\"t\",\"s\":\"\x01\"}",
            b"{\"id\":\"a\",\"type\":\"t\",\"s\":\"\xff\"}",
            br#"{"id":"a","type":"t""#,
        ] {
            assert!(scan_envelope(s).is_err(), "{}", String::from_utf8_lossy(s));
        }
        ok(r#"{"id":"a","type":"t","s":"\ud83d\ude00 é 😀","n":1e308}"#);
    }

    #[test]
    fn utf8_is_checked_in_the_one_pass() {
        // Valid multi-byte text inside strings, keys included.
        ok("{\"id\":\"\u{e9}\u{1F600}\",\"type\":\"t\",\"\u{e9}\":\"\u{4e2d}\u{6587}\"}");
        for s in [
            &b"{\"id\":\"a\xc3\",\"type\":\"t\"}"[..], // truncated sequence before the quote
            b"{\"id\":\"a\xed\xa0\x80\",\"type\":\"t\"}", // an encoded surrogate
            b"{\"id\":\"a\xc0\xaf\",\"type\":\"t\"}",  // overlong
            b"{\"id\":\"a\",\"type\":\"t\"}\xff",      // after the object
            b"{\"id\":\"a\",\xff:1,\"type\":\"t\"}",   // outside a string
        ] {
            let e = scan_envelope(s).unwrap_err();
            assert!(e.to_string().contains("UTF-8"), "{e}");
        }
        // A byte-order mark is not JSON whitespace.
        assert!(scan_envelope(b"\xef\xbb\xbf{\"id\":\"a\",\"type\":\"t\"}").is_err());
    }

    #[cfg(feature = "simd")]
    /// The SIMD path against the scalar reference.
    mod differential {
        use super::*;
        use proptest::prelude::*;

        /// Byte sequences every UTF-8 validator must refuse, and some it must
        /// take, to plant inside strings at every offset.
        const BROKEN: &[&[u8]] = &[
            b"\xff",
            b"\x80",
            b"\xc3",             // a lead byte without its continuation
            b"\xe4\xb8",         // three-byte sequence cut short
            b"\xf0\x9f\x98",     // four-byte sequence cut short
            b"\xc0\xaf",         // overlong `/`
            b"\xe0\x80\xaf",     // overlong, three bytes
            b"\xed\xa0\x80",     // an encoded surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"\xf8\x88\x80\x80\x80",
        ];
        const WHOLE: &[&str] = &["\u{e9}", "\u{4e2d}", "\u{1F600}", "\u{10FFFF}", "\u{7ff}"];

        fn both(body: &[u8]) -> String {
            let scalar = format!("{:?}", scan_envelope_with(body, Utf8::Scalar));
            let simd = format!("{:?}", scan_envelope_with(body, Utf8::Simd));
            assert_eq!(scalar, simd, "{}", String::from_utf8_lossy(body));
            scalar
        }

        /// A long string of multi-byte text with `planted` at `at`, in every
        /// position of a body several SIMD blocks long.
        fn planted(at: usize, planted: &[u8], text: &str) -> Vec<u8> {
            let mut s = text.repeat(300 / text.len() + 1).into_bytes();
            s.splice(at..at, planted.iter().copied());
            let mut body = br#"{"id":"evt_1","type":"t","data":{"object":{"d":""#.to_vec();
            body.extend_from_slice(&s);
            body.extend_from_slice(br#""}}}"#);
            body
        }

        #[test]
        fn simd_and_scalar_utf8_agree_on_every_offset() {
            for text in WHOLE {
                for at in 0..260 {
                    for bad in BROKEN {
                        let body = planted(at, bad, text);
                        let out = both(&body);
                        assert!(out.contains("UTF-8"), "{out}");
                    }
                    for good in WHOLE {
                        let body = planted(at, good.as_bytes(), text);
                        if std::str::from_utf8(&body).is_ok() {
                            assert!(both(&body).starts_with("Ok"));
                        }
                    }
                }
            }
            // An invalid body that is also broken JSON: the UTF-8 reason wins on
            // both paths; a body that is only broken JSON keeps its JSON reason.
            let out = both(b"{\"id\":\"\xff\",\"type\":");
            assert!(out.contains("UTF-8"), "{out}");
            let out = both("{\"id\":\"é\",\"type\":".as_bytes());
            assert!(
                out.contains("not valid JSON") || out.contains("JSON"),
                "{out}"
            );
        }

        const SNIPPETS: &[&[u8]] = &[
            b"\\u00e9",
            b"\\ud83d\\ude00",
            b"\\ud800",
            b"\\n",
            b"\\\"",
            b"\",\"k\":\"",
            b"\"},{\"k\":\"",
            b"\":[1,\"",
        ];

        /// Bytes of JSON-ish text: whole characters of 1–4 bytes, structure,
        /// escapes, and broken sequences, so both valid and invalid bodies
        /// come out often.
        fn piece() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                4 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
                2 => "[a-z ]{1,40}".prop_map(String::into_bytes),
                1 => prop::sample::select(BROKEN).prop_map(<[u8]>::to_vec),
                1 => any::<u8>().prop_map(|b| vec![b]),
                1 => prop::sample::select(SNIPPETS).prop_map(<[u8]>::to_vec),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// Inside an envelope's string (mostly well-formed JSON around it).
            #[test]
            fn simd_and_scalar_paths_accept_the_same_bodies(
                pieces in prop::collection::vec(piece(), 0..80),
                at in 0usize..3,
            ) {
                let text: Vec<u8> = pieces.concat();
                let mut body = match at {
                    0 => br#"{"id":""#.to_vec(),
                    1 => br#"{"id":"e","type":"t","data":{"object":{"x":""#.to_vec(),
                    _ => br#"{"type":"t","id":"e","k":[""#.to_vec(),
                };
                body.extend_from_slice(&text);
                body.extend_from_slice(match at {
                    0 => &br#"","type":"t"}"#[..],
                    1 => br#""}}}"#,
                    _ => br#""]}"#,
                });
                let out = both(&body);
                if std::str::from_utf8(&body).is_err() {
                    prop_assert!(out.contains("UTF-8"), "{}", out);
                } else if out.starts_with("Ok") {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
                }
            }

            /// Arbitrary bytes.
            #[test]
            fn simd_and_scalar_paths_agree_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..600)) {
                let out = both(&body);
                if std::str::from_utf8(&body).is_err() {
                    prop_assert!(out.contains("UTF-8"), "{}", out);
                }
            }
        }
    }

    #[test]
    fn envelope_field_types() {
        assert!(bad(br#"{"id":1,"type":"t"}"#).contains("`id` is not a string"));
        assert!(bad(br#"{"type":"t"}"#).contains("no string `id`"));
        assert!(bad(br#"{"id":"a","type":"t","account_id":5}"#).contains("account_id"));
        assert!(bad(br#"{"id":"a","type":"t","data":[]}"#).contains("`data`"));
        assert!(bad(b"[]").contains("not a JSON object"));
        let e = ok(r#"{"id":"a","type":"t","data":null}"#);
        assert_eq!(e.object, None);
        let e = ok(r#"{"id":"a","type":"t","data":{"object":null}}"#);
        assert_eq!(e.object, None);
    }
}
