//! The `X-Plugipay-Signature` header: the header rules of `docs/behaviour.md`, in one place.

use std::fmt;

use crate::error::{Reason, SignatureError};
use crate::limits::{MAX_HEADER_LEN, MAX_SIGNATURES};

/// The header's name as Plugipay sends it. HTTP header names are
/// case-insensitive; frameworks match it in any case.
pub const SIGNATURE_HEADER: &str = "X-Plugipay-Signature";

/// One `v1=` value, hex-decoded in constant time. `valid` is 1 only for exactly
/// 64 hex digits; anything else is kept as a candidate that can never match.
#[derive(Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) mac: [u8; 32],
    pub(crate) valid: u8,
}

/// A parsed `X-Plugipay-Signature` header: the timestamp and the `v1`
/// candidates (1 to 32). Obtained before the body is read, so an adapter can
/// reject a bad header without touching the body, then verified together with
/// the body by [`Verifier::verify_parsed`](crate::Verifier::verify_parsed).
///
/// ```
/// use plugipay_webhook::SignatureHeader;
///
/// let h = SignatureHeader::parse(b"t=17, v1=abc, v0=ignored,").unwrap();
/// assert_eq!(h.timestamp(), 17);
/// assert_eq!(h.signature_count(), 1);
/// ```
#[derive(Clone)]
pub struct SignatureHeader {
    timestamp: i64,
    candidates: Candidates,
}

/// The `v1` candidates: two inline (one in the common case, two during a
/// rotation), more on the heap — no allocation for the usual header.
#[derive(Clone)]
enum Candidates {
    Inline(u8, [Candidate; 2]),
    Heap(Vec<Candidate>),
}

impl Candidates {
    const EMPTY: Candidate = Candidate {
        mac: [0; 32],
        valid: 0,
    };

    fn new() -> Candidates {
        Candidates::Inline(0, [Self::EMPTY; 2])
    }

    fn push(&mut self, c: Candidate) {
        match self {
            Candidates::Inline(len, items) if usize::from(*len) < items.len() => {
                items[usize::from(*len)] = c;
                *len += 1;
            }
            Candidates::Inline(_, items) => {
                let mut v = Vec::with_capacity(MAX_SIGNATURES);
                v.extend_from_slice(items);
                v.push(c);
                *self = Candidates::Heap(v);
            }
            Candidates::Heap(v) => v.push(c),
        }
    }

    fn as_slice(&self) -> &[Candidate] {
        match self {
            Candidates::Inline(len, items) => &items[..usize::from(*len)],
            Candidates::Heap(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Candidates are attacker-supplied, not secret, but there is no use in
        // echoing them either.
        f.debug_struct("SignatureHeader")
            .field("timestamp", &self.timestamp)
            .field("signatures", &self.candidates.len())
            .finish()
    }
}

impl SignatureHeader {
    /// Applies header rule 1 (`docs/behaviour.md`) to *all* of a request's values of the
    /// `X-Plugipay-Signature` field, then rules 2–8 to the one value.
    ///
    /// No field → `signature_missing`; two or more → `signature_malformed`.
    /// Adapters call this (through [`Verifier::check_header`](crate::Verifier::check_header))
    /// so none of them re-implements the rule.
    ///
    /// ```
    /// use plugipay_webhook::{ErrorCode, SignatureHeader};
    ///
    /// let none: [&[u8]; 0] = [];
    /// assert_eq!(SignatureHeader::from_values(none).unwrap_err().code(), ErrorCode::SignatureMissing);
    /// let two: [&[u8]; 2] = [b"t=1,v1=00", b"t=1,v1=00"];
    /// assert_eq!(SignatureHeader::from_values(two).unwrap_err().code(), ErrorCode::SignatureMalformed);
    /// ```
    pub fn from_values<'a, I>(values: I) -> Result<SignatureHeader, SignatureError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Err(SignatureError::missing(Reason::HeaderAbsent));
        };
        let extra = values.count();
        if extra > 0 {
            return Err(SignatureError::malformed(Reason::HeaderRepeated(
                extra.saturating_add(1),
            )));
        }
        SignatureHeader::parse(first)
    }

    /// Applies header rules 2–8 (`docs/behaviour.md`) to one header value.
    pub fn parse(value: &[u8]) -> Result<SignatureHeader, SignatureError> {
        match SignatureHeader::canonical(value) {
            Some(header) => Ok(header),
            None => SignatureHeader::parse_any(value),
        }
    }

    /// The form Plugipay sends, `t=<1–19 digits>,v1=<64 hex digits>`, read
    /// without the general pass (rules 2–8 hold for it by construction:
    /// visible ASCII, no whitespace, one `t`, one well-formed `v1`). `None`
    /// for anything else, which then takes the general path. The `v1` is
    /// decoded in constant time as there; only its (public) validity is
    /// branched on.
    fn canonical(value: &[u8]) -> Option<SignatureHeader> {
        let rest = value.strip_prefix(b"t=")?;
        let digits = rest.len().checked_sub(68)?;
        let (digits, tail) = rest.split_at(digits);
        let hex = tail.strip_prefix(b",v1=")?;
        let timestamp = parse_timestamp(digits)?;
        let candidate = decode_candidate(hex);
        if candidate.valid != 1 {
            return None;
        }
        let mut candidates = Candidates::new();
        candidates.push(candidate);
        Some(SignatureHeader {
            timestamp,
            candidates,
        })
    }

    /// Rules 2–8 for any value.
    fn parse_any(value: &[u8]) -> Result<SignatureHeader, SignatureError> {
        // Rules 2 and 3 in one pass over the bytes.
        let (mut only_ows, mut visible) = (true, true);
        for &b in value {
            let ows = is_ows(b);
            only_ows &= ows;
            visible &= ows | (0x21..=0x7e).contains(&b);
        }
        // Rule 2: empty or only whitespace.
        if only_ows {
            return Err(SignatureError::missing(Reason::HeaderEmpty));
        }
        // Rule 3: length, then the byte set.
        if value.len() > MAX_HEADER_LEN {
            return Err(SignatureError::malformed(Reason::HeaderTooLong(
                value.len(),
            )));
        }
        if !visible {
            let bad = value
                .iter()
                .copied()
                .find(|&b| !(is_ows(b) || (0x21..=0x7e).contains(&b)))
                .unwrap_or(0);
            return Err(SignatureError::malformed(Reason::HeaderBadByte(bad)));
        }

        let mut timestamp: Option<i64> = None;
        let mut candidates = Candidates::new();
        // Rule 4: split on `,`, trim, skip empty items.
        for item in Items(Some(value)) {
            let item = trim_ows(item);
            if item.is_empty() {
                continue;
            }
            // Rule 5: key=value, split at the first `=`.
            let Some(eq) = item.iter().position(|&b| b == b'=') else {
                return Err(SignatureError::malformed(Reason::ItemWithoutEquals));
            };
            let key = trim_ows(&item[..eq]);
            let val = trim_ows(&item[eq + 1..]);
            match key {
                b"t" => {
                    // Rule 6: exactly one t, 1-19 digits, fits i64.
                    if timestamp.is_some() {
                        return Err(SignatureError::malformed(Reason::TimestampRepeated));
                    }
                    timestamp = Some(
                        parse_timestamp(val)
                            .ok_or_else(|| SignatureError::malformed(Reason::TimestampBadForm))?,
                    );
                }
                b"v1" => {
                    // Rule 7: at most 32.
                    if candidates.len() == MAX_SIGNATURES {
                        return Err(SignatureError::malformed(Reason::TooManyV1(MAX_SIGNATURES)));
                    }
                    candidates.push(decode_candidate(val));
                }
                // Rule 8: anything else is ignored.
                _ => {}
            }
        }
        let Some(timestamp) = timestamp else {
            return Err(SignatureError::malformed(Reason::TimestampMissing));
        };
        if candidates.is_empty() {
            return Err(SignatureError::malformed(Reason::NoV1));
        }
        Ok(SignatureHeader {
            timestamp,
            candidates,
        })
    }

    /// The `t=` value, seconds since the Unix epoch.
    #[must_use]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// How many `v1=` items the header carried (well-formed or not).
    #[must_use]
    pub fn signature_count(&self) -> usize {
        self.candidates.len()
    }

    pub(crate) fn candidates(&self) -> &[Candidate] {
        self.candidates.as_slice()
    }
}

/// The header's items: `value.split(|&b| b == b',')`, with the commas found
/// by `memchr` (the 64 hex digits of a `v1` hold none: one SIMD step instead
/// of a byte loop).
struct Items<'a>(Option<&'a [u8]>);

impl<'a> Iterator for Items<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.0?;
        match memchr::memchr(b',', rest) {
            Some(i) => {
                self.0 = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// HTTP optional whitespace: SP and HTAB only.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_ows(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_ows(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn parse_timestamp(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(n)
}

/// Decodes one hex digit without data-dependent branches: `(value, ok)`
/// where `ok` is `0xff` for `0-9a-fA-F` and `0` otherwise (then `value` is
/// meaningless). Byte arithmetic only, so the 64-digit loop vectorises.
#[inline]
fn decode_nibble(c: u8) -> (u8, u8) {
    // 0xff when x < n (for x, n < 128 as i16), else 0.
    let below = |x: u8, n: i16| ((i16::from(x) - n) >> 8) as u8;
    let d = c.wrapping_sub(b'0');
    let is_digit = below(d, 10) & below(c, 128);
    let l = (c | 0x20).wrapping_sub(b'a');
    let is_alpha = below(l, 6) & below(c, 128);
    (
        (d & is_digit) | (l.wrapping_add(10) & is_alpha),
        is_digit | is_alpha,
    )
}

/// Hex-decodes a `v1` value in constant time for its (public) length.
fn decode_candidate(hex: &[u8]) -> Candidate {
    let mut mac = [0u8; 32];
    let Ok(hex) = <&[u8; 64]>::try_from(hex) else {
        return Candidate { mac, valid: 0 };
    };
    let mut ok = 0xffu8;
    for (out, pair) in mac.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, hi_ok) = decode_nibble(pair[0]);
        let (lo, lo_ok) = decode_nibble(pair[1]);
        ok &= hi_ok & lo_ok;
        *out = (hi << 4) | (lo & 0x0f);
    }
    Candidate { mac, valid: ok & 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn code(v: &[u8]) -> ErrorCode {
        SignatureHeader::parse(v).unwrap_err().code()
    }

    #[test]
    fn nibbles_decode_exactly_the_hex_digits() {
        for c in 0u8..=255 {
            let want = (c as char).to_digit(16);
            let (value, ok) = decode_nibble(c);
            match want {
                Some(d) => assert_eq!((u32::from(value), ok), (d, 0xff), "byte {c:#x}"),
                None => assert_eq!(ok, 0, "byte {c:#x} accepted"),
            }
        }
    }

    #[test]
    fn candidates_are_valid_only_with_64_hex_digits() {
        let ok = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        assert_eq!(ok.len(), 64);
        let c = decode_candidate(ok.as_bytes());
        assert_eq!(c.valid, 1);
        assert_eq!(c.mac[0], 0x01);
        assert_eq!(c.mac[8], 0xAB);
        let bad = ok.replace('9', "g");
        assert_eq!(decode_candidate(bad.as_bytes()).valid, 0);
        assert_eq!(decode_candidate(&ok.as_bytes()[..62]).valid, 0);
    }

    /// What a parse comes to, comparable across the two paths.
    fn outcome(r: Result<SignatureHeader, SignatureError>) -> String {
        match r {
            Ok(h) => format!(
                "t={} {:?}",
                h.timestamp(),
                h.candidates()
                    .iter()
                    .map(|c| (c.mac, c.valid))
                    .collect::<Vec<_>>()
            ),
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn the_canonical_fast_path_agrees_with_the_general_one() {
        let hex = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        let canonical = format!("t=1767225600,v1={hex}");
        assert!(SignatureHeader::canonical(canonical.as_bytes()).is_some());
        // Near misses of every kind, each compared with the general path.
        let mut cases = vec![
            canonical.clone(),
            format!("t=1,v1={hex}"),
            format!("t=9223372036854775807,v1={hex}"),
            format!("t=9223372036854775808,v1={hex}"),
            format!("t=12345678901234567890,v1={hex}"),
            format!("t=,v1={hex}"),
            format!("t=+1,v1={hex}"),
            format!("t=1 ,v1={hex}"),
            format!("t=1,v1={hex} "),
            format!(" t=1,v1={hex}"),
            format!("t=1,v1={hex},"),
            format!("t=1,v1={}", &hex[..63]),
            format!("t=1,v1={hex}0"),
            format!("t=1,v1=x{}", &hex[1..]),
            format!("t=1,v2={hex}"),
            format!("T=1,v1={hex}"),
            format!("t=1;v1={hex}"),
            format!("v1={hex},t=1"),
        ];
        // Eleven telling byte values at every position of the canonical header.
        let base = canonical.into_bytes();
        let mut bytes_cases = Vec::new();
        for at in 0..base.len() {
            for b in [
                0u8, b' ', b'\t', b',', b'=', b'0', b'g', b'G', 0x7f, 0x80, 0xff,
            ] {
                let mut v = base.clone();
                v[at] = b;
                bytes_cases.push(v);
            }
        }
        bytes_cases.extend(cases.drain(..).map(String::into_bytes));
        for v in &bytes_cases {
            assert_eq!(
                outcome(SignatureHeader::parse(v)),
                outcome(SignatureHeader::parse_any(v)),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }

    proptest::proptest! {
        /// Canonical headers and near misses (mostly canonical parts, so the
        /// fast path is taken often): both paths give the same answer.
        #[test]
        fn both_header_paths_agree(
            t in proptest::prop_oneof![3 => "[0-9]{1,19}", 1 => "[0-9+ -]{0,21}"],
            sep in proptest::prop_oneof![3 => proptest::strategy::Just(",".to_owned()), 1 => "(, |,,|;| ,)"],
            key in proptest::prop_oneof![3 => proptest::strategy::Just("v1".to_owned()), 1 => "(v2|V1|t| v1)"],
            hex in proptest::prop_oneof![3 => "[0-9a-fA-F]{64}", 1 => "[0-9a-fA-Fg ,=]{60,68}"],
        ) {
            let v = format!("t={t}{sep}{key}={hex}");
            proptest::prop_assert_eq!(
                outcome(SignatureHeader::parse(v.as_bytes())),
                outcome(SignatureHeader::parse_any(v.as_bytes()))
            );
        }
    }

    #[test]
    fn header_rules_give_their_codes() {
        assert_eq!(code(b""), ErrorCode::SignatureMissing);
        assert_eq!(code(b" \t "), ErrorCode::SignatureMissing);
        assert_eq!(code(b"t=1"), ErrorCode::SignatureMalformed);
        assert_eq!(code(b"v1=ab"), ErrorCode::SignatureMalformed);
        assert_eq!(code(b"t=1,t=1,v1=ab"), ErrorCode::SignatureMalformed);
        assert_eq!(code(b"t=1,v1=ab,junk"), ErrorCode::SignatureMalformed);
        assert_eq!(code(b"T=1,v1=ab"), ErrorCode::SignatureMalformed);
        assert_eq!(code(b"t=+1,v1=ab"), ErrorCode::SignatureMalformed);
        assert_eq!(
            code(b"t=9223372036854775808,v1=ab"),
            ErrorCode::SignatureMalformed
        );
        assert_eq!(code(b"t=1,v1=ab\x00"), ErrorCode::SignatureMalformed);
        let many = format!("t=1{}", ",v1=00".repeat(33));
        assert_eq!(code(many.as_bytes()), ErrorCode::SignatureMalformed);
        let long = format!("t=1,v1=00,x={}", "a".repeat(MAX_HEADER_LEN));
        assert_eq!(code(long.as_bytes()), ErrorCode::SignatureMalformed);
    }

    #[test]
    fn lenient_forms_are_accepted() {
        let h = SignatureHeader::parse(b" t = 0017 ,\tv1=x , v1 = y ,, v2=z, =w,").unwrap();
        assert_eq!(h.timestamp(), 17);
        assert_eq!(h.signature_count(), 2);
        let h = SignatureHeader::parse(b"t=9223372036854775807,v1=").unwrap();
        assert_eq!(h.timestamp(), i64::MAX);
        let max = format!("t=1{}", ",v1=00".repeat(32));
        assert_eq!(
            SignatureHeader::parse(max.as_bytes())
                .unwrap()
                .signature_count(),
            32
        );
    }
}
