//! The verifier: a keyring of secrets, the tolerance and the body limits.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConditionallySelectable;

use crate::error::{ConfigError, Reason, SignatureError};
use crate::event::WebhookEvent;
use crate::header::SignatureHeader;
use crate::json;

type HmacSha256 = Hmac<Sha256>;

/// The environment variable [`Verifier::from_env`] reads.
pub const SECRET_ENV_VAR: &str = "PLUGIPAY_WEBHOOK_SECRET";

/// The environment variable naming a file [`Verifier::from_env`] reads the
/// secret(s) from instead (Docker and Kubernetes secrets).
pub const SECRET_FILE_ENV_VAR: &str = "PLUGIPAY_WEBHOOK_SECRET_FILE";

/// Default freshness window: 300 seconds, as in the Python SDK.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Default body limit: 1 MiB. A body of exactly this size is accepted.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Default deadline for reading the whole body: 10 seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The verifier's limits, for adapters to enforce (see [`Verifier::limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How far a timestamp may be from now, either way.
    pub tolerance: Duration,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// Deadline for reading the whole body.
    pub read_timeout: Duration,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
struct Inner {
    /// One keyed HMAC state per configured secret (`None` for an empty one,
    /// which can never match but keeps the keyring's positions).
    keys: Vec<Option<HmacSha256>>,
    usable: usize,
    limits: Limits,
    clock: Option<Clock>,
}

/// Verifies Plugipay webhook deliveries.
///
/// Holds a keyring of signing secrets (each keyed into an HMAC-SHA256 state
/// once, at construction), the freshness tolerance and the body limits the
/// framework adapters enforce. Cloning is cheap: the state is shared.
///
/// Every configured secret costs one HMAC over the body per request, so keep
/// the keyring to the secrets that are really in use (normally one; two during
/// a rotation).
///
/// ```
/// use plugipay_webhook::{testing, Verifier};
/// use std::time::Duration;
///
/// // During a rotation: the new secret first, the old one until it stops matching.
/// let verifier = Verifier::from_secrets(["whsec_new", "whsec_old"])
///     .tolerance(Duration::from_secs(300));
///
/// let body = br#"{"id":"evt_1","type":"plugipay.invoice.paid.v1"}"#;
/// let header = testing::sign_header("whsec_old", 1_700_000_000, body);
/// let event = verifier.verify_at(&body[..], Some(&header), 1_700_000_010).unwrap();
/// assert_eq!(event.matched_secret(), 1); // still signed with the old secret
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "secrets",
                &format_args!("[REDACTED; {}]", self.inner.keys.len()),
            )
            .field("limits", &self.inner.limits)
            .field(
                "clock",
                &if self.inner.clock.is_some() {
                    "injected"
                } else {
                    "system"
                },
            )
            .finish()
    }
}

impl Verifier {
    /// A verifier with one secret, the default 300 s tolerance, 1 MiB body
    /// limit and 10 s read deadline.
    ///
    /// The secret is used exactly as given, as UTF-8 bytes, `whsec_` prefix
    /// included. An empty secret is accepted here (logged as a warning) but
    /// every verification then fails with `signature_missing`, as in the
    /// Python SDK; [`try_new`](Verifier::try_new) refuses it instead.
    pub fn new(secret: impl AsRef<str>) -> Verifier {
        Verifier::from_secrets([secret])
    }

    /// Like [`new`](Verifier::new), but an empty (or whitespace-only) secret
    /// is an error rather than a verifier that refuses every delivery.
    ///
    /// ```
    /// use plugipay_webhook::Verifier;
    /// assert!(Verifier::try_new("whsec_abc").is_ok());
    /// assert!(Verifier::try_new("").is_err());
    /// ```
    pub fn try_new(secret: impl AsRef<str>) -> Result<Verifier, ConfigError> {
        Verifier::try_from_secrets([secret])
    }

    /// Like [`from_secrets`](Verifier::from_secrets), but a keyring without
    /// a non-empty secret is an error.
    pub fn try_from_secrets<I, S>(secrets: I) -> Result<Verifier, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let secrets: Vec<S> = secrets.into_iter().collect();
        if secrets.iter().all(|s| s.as_ref().trim().is_empty()) {
            return Err(ConfigError::new(
                "no signing secret: the keyring is empty or holds only empty secrets".to_owned(),
            ));
        }
        Ok(Verifier::from_secrets(secrets))
    }

    /// A verifier with a keyring of secrets, tried in order. The event reports
    /// which one matched ([`WebhookEvent::matched_secret`]).
    pub fn from_secrets<I, S>(secrets: I) -> Verifier
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys: Vec<Option<HmacSha256>> = secrets
            .into_iter()
            .map(|s| {
                let s = s.as_ref().as_bytes();
                if s.is_empty() {
                    None
                } else {
                    // HMAC accepts keys of any length; this cannot fail.
                    HmacSha256::new_from_slice(s).ok()
                }
            })
            .collect();
        let usable = keys.iter().filter(|k| k.is_some()).count();
        if usable == 0 {
            tracing::warn!(
                "plugipay webhook: a Verifier without a non-empty secret answers signature_missing \
                 to every delivery (use Verifier::try_new to refuse it at start-up)"
            );
        }
        Verifier {
            inner: Arc::new(Inner {
                keys,
                usable,
                limits: Limits {
                    tolerance: DEFAULT_TOLERANCE,
                    body_limit: DEFAULT_BODY_LIMIT,
                    read_timeout: DEFAULT_READ_TIMEOUT,
                },
                clock: None,
            }),
        }
    }

    /// Reads the keyring from `PLUGIPAY_WEBHOOK_SECRET`: one secret, or several
    /// separated by commas during a rotation (whitespace around each is
    /// trimmed) — or from the file named by `PLUGIPAY_WEBHOOK_SECRET_FILE`
    /// (Docker and Kubernetes secrets; its trailing newline is trimmed,
    /// secrets separated by commas or newlines). Fails when neither is set,
    /// both are, the file cannot be read, or no non-empty secret is found —
    /// call it at start-up, so a misconfigured receiver refuses to start
    /// instead of rejecting every delivery.
    ///
    /// A secret wrapped in quotes (as `docker --env-file` keeps them) or with
    /// whitespace around it is logged as a warning — never its value.
    ///
    /// ```no_run
    /// let verifier = plugipay_webhook::Verifier::from_env()?;
    /// # Ok::<(), plugipay_webhook::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Verifier, ConfigError> {
        let file = std::env::var_os(SECRET_FILE_ENV_VAR);
        match (std::env::var_os(SECRET_ENV_VAR), file) {
            (Some(_), Some(_)) => Err(ConfigError::new(format!(
                "both {SECRET_ENV_VAR} and {SECRET_FILE_ENV_VAR} are set: set one"
            ))),
            (None, Some(path)) => Verifier::from_secret_file(std::path::Path::new(&path)),
            _ => Verifier::from_env_var(SECRET_ENV_VAR),
        }
    }

    /// Like [`from_env`](Verifier::from_env), from another variable.
    pub fn from_env_var(name: &str) -> Result<Verifier, ConfigError> {
        let value = std::env::var(name).map_err(|e| match e {
            std::env::VarError::NotPresent => ConfigError::new(format!(
                "{name} is not set: set it (or {SECRET_FILE_ENV_VAR}) to the webhook endpoint's signing secret (whsec_…)"
            )),
            std::env::VarError::NotUnicode(_) => {
                ConfigError::new(format!("{name} is not valid Unicode"))
            }
        })?;
        Verifier::from_secret_list(&value, name, &[',']).map_err(|()| {
            ConfigError::new(format!(
                "{name} is empty: set it to the webhook endpoint's signing secret (whsec_…)"
            ))
        })
    }

    /// The keyring from a file: its trailing newline trimmed, secrets
    /// separated by commas or newlines.
    pub fn from_secret_file(path: &std::path::Path) -> Result<Verifier, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read the secret file {}: {e}",
                path.display()
            ))
        })?;
        let source = format!("the secret file {}", path.display());
        let text = text.trim_end_matches(['\n', '\r']);
        Verifier::from_secret_list(text, &source, &[',', '\n'])
            .map_err(|()| ConfigError::new(format!("{source} holds no secret")))
    }

    /// Parses a secret list; `Err` when no secret is non-empty. Warns (by
    /// position, never the value) about quotes and surrounding whitespace.
    fn from_secret_list(value: &str, source: &str, separators: &[char]) -> Result<Verifier, ()> {
        let mut secrets = Vec::new();
        for (index, raw) in value.split(separators).enumerate() {
            let secret = raw.trim();
            if secret.is_empty() {
                continue;
            }
            if secret != raw {
                tracing::warn!(
                    "plugipay webhook: secret #{index} in {source} has whitespace around it; it was trimmed"
                );
            }
            let quoted = secret.len() >= 2
                && [('"', '"'), ('\'', '\'')]
                    .iter()
                    .any(|(a, b)| secret.starts_with(*a) && secret.ends_with(*b));
            if quoted {
                tracing::warn!(
                    "plugipay webhook: secret #{index} in {source} is wrapped in quotes, which are \
                     part of the key as given (docker --env-file keeps them): every delivery signed \
                     with the real secret will be signature_invalid — remove the quotes"
                );
            }
            secrets.push(secret);
        }
        if secrets.is_empty() {
            return Err(());
        }
        Ok(Verifier::from_secrets(secrets))
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// How old (or how far in the future) a timestamp may be. Default 300 s;
    /// sub-second parts are ignored.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Verifier {
        self.inner_mut().limits.tolerance = tolerance;
        self
    }

    /// The largest body accepted, in bytes (default 1 MiB). Adapters answer
    /// `413 payload_too_large` above it without buffering more.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Verifier {
        self.inner_mut().limits.body_limit = bytes;
        self
    }

    /// The deadline for reading the whole body (default 10 s). Adapters answer
    /// `408 body_timeout` when it passes.
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Verifier {
        self.inner_mut().limits.read_timeout = timeout;
        self
    }

    /// Replaces the system clock (whole seconds since the Unix epoch) — for
    /// tests and replay tools, like the Python SDK's `now=`. Production code
    /// never sets this.
    ///
    /// ```
    /// let verifier = plugipay_webhook::Verifier::new("whsec_test").clock(|| 1_700_000_000);
    /// assert_eq!(verifier.now(), 1_700_000_000);
    /// ```
    #[must_use]
    pub fn clock(mut self, now: impl Fn() -> i64 + Send + Sync + 'static) -> Verifier {
        self.inner_mut().clock = Some(Arc::new(now));
        self
    }

    /// The limits adapters enforce.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// How many secrets the keyring holds (including empty ones).
    #[must_use]
    pub fn secret_count(&self) -> usize {
        self.inner.keys.len()
    }

    /// The current time as this verifier sees it: the injected clock, or the
    /// system clock floored to whole seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        match &self.inner.clock {
            Some(clock) => clock(),
            None => system_now(),
        }
    }

    /// Verifies a delivery against the current time.
    ///
    /// `raw_body` is the body exactly as received (`&[u8]`, `&str`, `Vec<u8>`,
    /// `String` or [`Bytes`]; owned forms are kept without a copy), `header`
    /// the `X-Plugipay-Signature` value, `None` when absent.
    pub fn verify(
        &self,
        raw_body: impl Into<RawBody>,
        header: Option<&str>,
    ) -> Result<WebhookEvent, SignatureError> {
        self.verify_at(raw_body, header, self.now())
    }

    /// Verifies a delivery as of `now` (seconds since the Unix epoch).
    pub fn verify_at(
        &self,
        raw_body: impl Into<RawBody>,
        header: Option<&str>,
        now: i64,
    ) -> Result<WebhookEvent, SignatureError> {
        let header = self.check_header(header.map(str::as_bytes))?;
        self.verify_parsed_at(raw_body, &header, now)
    }

    /// Checks 1–2 of the contract, before any body is read: a secret is
    /// configured, and the request's `X-Plugipay-Signature` fields (all of
    /// them, as raw bytes) follow the header rules.
    pub fn check_header<'a, I>(&self, values: I) -> Result<SignatureHeader, SignatureError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        if self.inner.usable == 0 {
            return self
                .check_parsed(Err(SignatureError::missing(Reason::NoSecret)))
                .inspect_err(|e| crate::report::rejected(e.code().as_str(), None));
        }
        self.check_parsed(SignatureHeader::from_values(values))
            .inspect_err(|e| crate::report::rejected(e.code().as_str(), None))
    }

    /// Check 1 (a secret is configured) before a header parsed ahead of
    /// knowing the verifier; logs a failure at `debug` (the caller reports
    /// it: `http::receive` with its tenant).
    pub(crate) fn check_parsed(
        &self,
        parsed: Result<SignatureHeader, SignatureError>,
    ) -> Result<SignatureHeader, SignatureError> {
        let result = if self.inner.usable == 0 {
            Err(SignatureError::missing(Reason::NoSecret))
        } else {
            parsed
        };
        result.inspect_err(|e| self.note_failure(e))
    }

    /// Checks 3–5 with the system clock, for a header already checked by
    /// [`check_header`](Verifier::check_header).
    pub fn verify_parsed(
        &self,
        raw_body: impl Into<RawBody>,
        header: &SignatureHeader,
    ) -> Result<WebhookEvent, SignatureError> {
        self.verify_parsed_at(raw_body, header, self.now())
    }

    /// Checks 3–5 as of `now`: the signature, the freshness, the envelope.
    pub fn verify_parsed_at(
        &self,
        raw_body: impl Into<RawBody>,
        header: &SignatureHeader,
        now: i64,
    ) -> Result<WebhookEvent, SignatureError> {
        let body = raw_body.into().0;
        self.verify_bytes(body, header, now, None).inspect_err(|e| {
            self.note_failure(e);
            crate::report::rejected(e.code().as_str(), None);
        })
    }

    /// Checks 3–5 with this verifier's clock for a delivery received over
    /// HTTP, keeping its `X-Plugipay-Signature` text in the event.
    #[cfg(feature = "tokio")]
    pub(crate) fn verify_received(
        &self,
        body: Bytes,
        header: &SignatureHeader,
        signature: Option<Box<str>>,
        tenant: Option<std::sync::Arc<str>>,
    ) -> Result<WebhookEvent, SignatureError> {
        self.verify_bytes(body, header, self.now(), signature)
            .map(|event| event.with_tenant(tenant))
            .inspect_err(|e| self.note_failure(e))
    }

    fn verify_bytes(
        &self,
        body: Bytes,
        header: &SignatureHeader,
        now: i64,
        signature: Option<Box<str>>,
    ) -> Result<WebhookEvent, SignatureError> {
        if self.inner.usable == 0 {
            return Err(SignatureError::missing(Reason::NoSecret));
        }
        let t = header.timestamp();
        let matched = self.matching_secret(&body, header).ok_or_else(|| {
            SignatureError::invalid(Reason::NoMatch {
                candidates: header.signature_count(),
                secrets: self.inner.usable,
            })
        })?;

        let tolerance = self.inner.limits.tolerance.as_secs();
        let age = i128::from(now) - i128::from(t);
        if age > i128::from(tolerance) {
            return Err(SignatureError::new(
                crate::ErrorCode::SignatureStale,
                Reason::TooOld {
                    age: u64::try_from(age).unwrap_or(u64::MAX),
                    tolerance,
                },
            ));
        }
        if -age > i128::from(tolerance) {
            return Err(SignatureError::new(
                crate::ErrorCode::SignatureStale,
                Reason::InFuture {
                    ahead: u64::try_from(-age).unwrap_or(u64::MAX),
                    tolerance,
                },
            ));
        }

        let envelope = json::scan_envelope(&body)?;
        Ok(WebhookEvent::new(body, envelope, matched, signature))
    }

    /// Compares every candidate against every secret's MAC with a
    /// constant-time primitive; the loops never exit early. Returns the
    /// position of the first secret with a matching candidate.
    fn matching_secret(&self, body: &[u8], header: &SignatureHeader) -> Option<usize> {
        let mut prefix = [0u8; 21];
        let prefix = timestamp_prefix(header.timestamp(), &mut prefix);
        let mut found = subtle::Choice::from(0);
        let mut matched: u32 = 0;
        for (index, key) in self.inner.keys.iter().enumerate() {
            let Some(key) = key else { continue };
            let mut mac = key.clone();
            mac.update(prefix);
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            let mut this = subtle::Choice::from(0);
            for candidate in header.candidates() {
                #[cfg(test)]
                tests::COMPARISONS.with(|c| c.set(c.get() + 1));
                this |=
                    macs_equal(&tag.into(), &candidate.mac) & subtle::Choice::from(candidate.valid);
            }
            // Record the first matching secret without branching on secrets.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            matched.conditional_assign(&index, this & !found);
            found |= this;
        }
        bool::from(found).then_some(matched as usize)
    }
}

/// Constant-time equality of two MACs: every byte compared, the differences
/// OR-ed together without a branch, then one optimisation barrier
/// (`subtle::Choice::from`) — where `<[u8]>::ct_eq` puts one on each of the
/// 32 bytes (≈ 15 ns per comparison in a profile).
fn macs_equal(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    // 1 when `diff` is 0 (0 - 1 borrows into the high byte), else 0.
    subtle::Choice::from(((u16::from(diff).wrapping_sub(1) >> 8) as u8) & 1)
}

impl Verifier {
    /// Logs one rejection at `debug`, with the rule that failed (never a
    /// secret, a signature or the body); the process's rejection report
    /// (`report.rs`) sums them up.
    fn note_failure(&self, err: &SignatureError) {
        tracing::debug!(code = err.code().as_str(), reason = %err, "plugipay webhook rejected");
    }
}

fn system_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            // Before 1970: floor towards negative infinity.
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -secs - i64::from(d.subsec_nanos() > 0)
        }
    }
}

/// `"<t>."` — the decimal form of the parsed timestamp and a dot, as the
/// sender's `f"{t}."` writes it.
fn timestamp_prefix(t: i64, buf: &mut [u8; 21]) -> &[u8] {
    let mut n = t.unsigned_abs();
    let mut i = buf.len() - 1;
    buf[i] = b'.';
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if t < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Verifies one delivery with one secret, the system clock and the default
/// 300 s tolerance — the Python SDK's `verify_webhook(raw_body,
/// signature_header, secret)`.
///
/// For a service, build one [`Verifier`] at start-up instead: it keys the HMAC
/// once and supports rotation.
///
/// ```
/// use plugipay_webhook::{testing, verify_webhook};
///
/// let body = br#"{"id":"evt_1","type":"plugipay.invoice.paid.v1","data":{"object":{"id":"inv_1"}}}"#;
/// let header = testing::sign_header_now("whsec_test", body);
/// let event = verify_webhook(&body[..], Some(&header), "whsec_test")?;
/// assert_eq!(event.event_type(), "plugipay.invoice.paid.v1");
/// assert_eq!(event.object()["id"], "inv_1");
/// # Ok::<(), plugipay_webhook::SignatureError>(())
/// ```
pub fn verify_webhook(
    raw_body: impl Into<RawBody>,
    signature_header: Option<&str>,
    secret: &str,
) -> Result<WebhookEvent, SignatureError> {
    Verifier::new(secret).verify(raw_body, signature_header)
}

/// A request body as received, taken by [`Verifier::verify`] from `&[u8]`,
/// `&str`, `Vec<u8>`, `String` or [`Bytes`]. Owned forms are kept without a
/// copy; borrowed ones are copied once (the event keeps the bytes).
///
/// Its `Debug` shows the length only: bodies carry personal data.
#[derive(Clone)]
pub struct RawBody(Bytes);

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody")
            .field("len", &self.0.len())
            .finish()
    }
}

impl RawBody {
    /// The bytes.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<Bytes> for RawBody {
    fn from(b: Bytes) -> Self {
        RawBody(b)
    }
}

impl From<&Bytes> for RawBody {
    fn from(b: &Bytes) -> Self {
        RawBody(b.clone())
    }
}

impl From<Vec<u8>> for RawBody {
    fn from(b: Vec<u8>) -> Self {
        RawBody(Bytes::from(b))
    }
}

impl From<String> for RawBody {
    fn from(s: String) -> Self {
        RawBody(Bytes::from(s))
    }
}

impl From<&[u8]> for RawBody {
    fn from(b: &[u8]) -> Self {
        RawBody(Bytes::copy_from_slice(b))
    }
}

impl<const N: usize> From<&[u8; N]> for RawBody {
    fn from(b: &[u8; N]) -> Self {
        RawBody(Bytes::copy_from_slice(b))
    }
}

impl From<&str> for RawBody {
    fn from(s: &str) -> Self {
        RawBody(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<&Vec<u8>> for RawBody {
    fn from(b: &Vec<u8>) -> Self {
        RawBody(Bytes::copy_from_slice(b))
    }
}

impl From<&String> for RawBody {
    fn from(s: &String) -> Self {
        RawBody(Bytes::copy_from_slice(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Constant-time comparisons made by `matching_secret` on this thread.
        pub(super) static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn every_candidate_is_compared_with_every_secret_wherever_the_match_is() {
        let secrets = ["whsec_a", "whsec_b", "whsec_c"];
        let v = Verifier::from_secrets(secrets);
        let body = br#"{"id":"e","type":"t"}"#;
        let good = crate::testing::sign("whsec_b", 100, body);
        let junk = "0".repeat(64);
        let mut counts = Vec::new();
        for position in [None, Some(0), Some(2), Some(4)] {
            let mut header = String::from("t=100");
            for i in 0..5 {
                let sig = if Some(i) == position { &good } else { &junk };
                header.push_str(&format!(",v1={sig}"));
            }
            COMPARISONS.with(|c| c.set(0));
            let result = v.verify_at(&body[..], Some(&header), 100);
            assert_eq!(result.is_ok(), position.is_some());
            counts.push(COMPARISONS.with(std::cell::Cell::get));
        }
        // 3 secrets x 5 candidates, whether the match is first, last or absent.
        assert_eq!(counts, [15, 15, 15, 15]);
    }

    #[test]
    fn prefix_is_the_decimal_form() {
        let mut buf = [0u8; 21];
        assert_eq!(timestamp_prefix(0, &mut buf), b"0.");
        assert_eq!(timestamp_prefix(17, &mut buf), b"17.");
        assert_eq!(
            timestamp_prefix(i64::MAX, &mut buf),
            b"9223372036854775807."
        );
        assert_eq!(
            timestamp_prefix(i64::MIN, &mut buf),
            b"-9223372036854775808."
        );
    }

    #[test]
    fn secret_list_parsing() {
        assert_eq!(
            Verifier::from_secret_list(" a , ,b,", "test", &[','])
                .unwrap()
                .secret_count(),
            2
        );
        assert!(Verifier::from_secret_list(" , ", "test", &[',']).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let v = Verifier::from_secrets(["whsec_topsecret", "whsec_other"]);
        let s = format!("{v:?}");
        assert!(!s.contains("topsecret") && !s.contains("other"), "{s}");
        assert!(s.contains("REDACTED"));
    }
}
