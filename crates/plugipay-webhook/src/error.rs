//! The verification error and its four stable codes.

use std::fmt;

/// Why a delivery was rejected: one of the four codes of the Plugipay contract.
///
/// The spelling returned by [`ErrorCode::as_str`] is stable and identical to the
/// Python SDK's `PlugipaySignatureError.code`, so dashboards and alerts can key
/// on it. What each code means, its usual causes and how to confirm each:
/// [`docs/troubleshooting.md`](https://github.com/plugipay/plugipay-webhook/blob/main/docs/troubleshooting.md).
///
/// ```
/// use plugipay_webhook::{verify_webhook, ErrorCode};
///
/// let err = verify_webhook(b"{}", None, "whsec_test").unwrap_err();
/// assert_eq!(err.code(), ErrorCode::SignatureMissing);
/// assert_eq!(err.code().as_str(), "signature_missing");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The header is absent or empty, or no non-empty secret is configured.
    SignatureMissing,
    /// The header does not have the `t=` and `v1=` parts in the required form.
    SignatureMalformed,
    /// The signature is genuine but its timestamp is outside the tolerance.
    SignatureStale,
    /// No signature matched, or the body is not a valid event envelope.
    SignatureInvalid,
}

impl ErrorCode {
    /// All codes, in the order of the contract.
    pub const ALL: [ErrorCode; 4] = [
        ErrorCode::SignatureMissing,
        ErrorCode::SignatureMalformed,
        ErrorCode::SignatureStale,
        ErrorCode::SignatureInvalid,
    ];

    /// The stable wire spelling: `signature_missing`, `signature_malformed`,
    /// `signature_stale` or `signature_invalid`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SignatureMissing => "signature_missing",
            ErrorCode::SignatureMalformed => "signature_malformed",
            ErrorCode::SignatureStale => "signature_stale",
            ErrorCode::SignatureInvalid => "signature_invalid",
        }
    }

    /// Parses the wire spelling back into a code.
    ///
    /// ```
    /// use plugipay_webhook::ErrorCode;
    /// assert_eq!(ErrorCode::from_name("signature_stale"), Some(ErrorCode::SignatureStale));
    /// assert_eq!(ErrorCode::from_name("nope"), None);
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rule failed. Kept private so the set can grow; it only feeds `Display`.
/// No variant carries secret material, an expected MAC or body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    NoSecret,
    HeaderAbsent,
    HeaderRepeated(usize),
    HeaderEmpty,
    HeaderTooLong(usize),
    HeaderBadByte(u8),
    ItemWithoutEquals,
    TimestampMissing,
    TimestampRepeated,
    TimestampBadForm,
    NoV1,
    TooManyV1(usize),
    NoMatch { candidates: usize, secrets: usize },
    TooOld { age: u64, tolerance: u64 },
    InFuture { ahead: u64, tolerance: u64 },
    BodyNotUtf8,
    BodyNotJson(&'static str, usize),
    BodyTooDeep(usize),
    NotAnObject,
    FieldMissing(&'static str),
    FieldWrongType(&'static str, &'static str),
    FieldRepeated(&'static str),
}

/// A delivery failed verification.
///
/// [`code`](SignatureError::code) is what programs match on;
/// the `Display` message says which rule failed, for humans. Neither ever
/// contains a secret, an expected signature or any byte of the body. The
/// usual causes of each code, and how to confirm them, are in
/// [`docs/troubleshooting.md`](https://github.com/plugipay/plugipay-webhook/blob/main/docs/troubleshooting.md).
///
/// ```
/// use plugipay_webhook::{testing, ErrorCode, Verifier};
/// use std::time::Duration;
///
/// let verifier = Verifier::new("whsec_test").tolerance(Duration::from_secs(300));
/// let body = br#"{"id":"evt_1","type":"plugipay.invoice.paid.v1"}"#;
/// let header = testing::sign_header("whsec_test", 1_000, body);
/// let err = verifier.verify_at(&body[..], Some(&header), 1_412).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::SignatureStale);
/// assert_eq!(err.to_string(), "signature_stale: timestamp is 412 s old; tolerance is 300 s");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureError {
    code: ErrorCode,
    reason: Reason,
}

impl SignatureError {
    pub(crate) fn new(code: ErrorCode, reason: Reason) -> Self {
        SignatureError { code, reason }
    }

    pub(crate) fn missing(reason: Reason) -> Self {
        Self::new(ErrorCode::SignatureMissing, reason)
    }

    pub(crate) fn malformed(reason: Reason) -> Self {
        Self::new(ErrorCode::SignatureMalformed, reason)
    }

    pub(crate) fn invalid(reason: Reason) -> Self {
        Self::new(ErrorCode::SignatureInvalid, reason)
    }

    /// The machine-readable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable explanation without the code prefix, e.g.
    /// `timestamp is 412 s old; tolerance is 300 s`.
    #[must_use]
    pub fn detail(&self) -> String {
        Detail(&self.reason).to_string()
    }
}

struct Detail<'a>(&'a Reason);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reason::NoSecret => f.write_str("no non-empty signing secret is configured"),
            Reason::HeaderAbsent => f.write_str("the X-Plugipay-Signature header is absent"),
            Reason::HeaderRepeated(n) => write!(
                f,
                "the X-Plugipay-Signature header appears {n} times; exactly one is allowed"
            ),
            Reason::HeaderEmpty => f.write_str("the X-Plugipay-Signature header is empty"),
            Reason::HeaderTooLong(n) => write!(
                f,
                "the signature header is {n} bytes long; at most {} are allowed",
                crate::limits::MAX_HEADER_LEN
            ),
            Reason::HeaderBadByte(b) => write!(
                f,
                "the signature header contains byte 0x{b:02x}; only visible ASCII, space and tab are allowed"
            ),
            Reason::ItemWithoutEquals => {
                f.write_str("a signature header item has no `=`; expected `key=value` items")
            }
            Reason::TimestampMissing => f.write_str("the signature header has no `t=` item"),
            Reason::TimestampRepeated => {
                f.write_str("the signature header has more than one `t=` item")
            }
            Reason::TimestampBadForm => f.write_str(
                "the `t=` value is not 1-19 ASCII digits fitting a signed 64-bit integer",
            ),
            Reason::NoV1 => f.write_str("the signature header has no `v1=` item"),
            Reason::TooManyV1(n) => write!(
                f,
                "the signature header has more than {n} `v1=` items",
            ),
            Reason::NoMatch {
                candidates,
                secrets,
            } => write!(
                f,
                "no v1 signature matched: {candidates} candidate{} against {secrets} configured secret{} \
                 (usually a wrong secret — test vs live, another endpoint's — or a body changed \
                 before verification by middleware or a proxy; see docs/troubleshooting.md)",
                plural(*candidates),
                plural(*secrets)
            ),
            Reason::TooOld { age, tolerance } => {
                write!(f, "timestamp is {age} s old; tolerance is {tolerance} s")
            }
            Reason::InFuture { ahead, tolerance } => write!(
                f,
                "timestamp is {ahead} s in the future; tolerance is {tolerance} s"
            ),
            Reason::BodyNotUtf8 => f.write_str("the body is not valid UTF-8"),
            Reason::BodyNotJson(what, at) => {
                write!(f, "the body is not valid JSON: {what} at byte {at}")
            }
            Reason::BodyTooDeep(max) => {
                write!(f, "the body nests more than {max} levels deep")
            }
            Reason::NotAnObject => f.write_str("the body is not a JSON object"),
            Reason::FieldMissing(name) => {
                write!(f, "the envelope has no string `{name}`")
            }
            Reason::FieldWrongType(name, want) => {
                write!(f, "the envelope's `{name}` is not {want}")
            }
            Reason::FieldRepeated(name) => {
                write!(f, "the envelope's `{name}` appears more than once")
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, Detail(&self.reason))
    }
}

impl fmt::Debug for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureError")
            .field("code", &self.code)
            .field("detail", &format_args!("{}", Detail(&self.reason)))
            .finish()
    }
}

impl std::error::Error for SignatureError {}

/// The verifier could not be configured (for example, the secret variable is
/// unset). Returned by [`Verifier::from_env`](crate::Verifier::from_env).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: String) -> Self {
        ConfigError { message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
