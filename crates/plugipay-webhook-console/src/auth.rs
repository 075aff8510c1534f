//! Who may look: the mount's explicit choice of authentication, the login
//! cookie, and the CSRF token every state-changing request carries.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How the name of a console's session cookie starts: the whole name is
/// `plugipay_console_` and eight hex digits derived from the console's
/// credentials, so that two consoles on one host — `inbox ui` beside
/// `listen --ui`; cookies ignore ports — keep their sessions apart.
pub const COOKIE: &str = "plugipay_console";

/// How the console authenticates requests. There is no default: mounting a
/// console is choosing one.
///
/// `Debug` never shows the token or the password.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`, or the session cookie the login
    /// sets — the form's `POST <base>/login`, or a `GET <base>/login?token=`
    /// link, redirected at once to a URL without the token. A session is
    /// `HttpOnly`, `SameSite=Strict`, `Secure` unless opted out, and
    /// expires (12 h by default); `POST <base>/logout` ends it.
    Bearer(String),
    /// HTTP basic authentication: the browser asks for the user and the
    /// password and sends them with every request.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// No authentication at all: for a console served on a loopback address
    /// to the one developer at the machine. Never mount it on a reachable
    /// address. It answers only requests whose `Host` is `localhost`,
    /// `127.0.0.1` or `[::1]` (any port): a web page that rebinds its own
    /// domain name to 127.0.0.1 still sends its own name as the `Host`, and
    /// is refused (`403`). It does not check the peer's address: behind a
    /// proxy that forwards from elsewhere with a loopback `Host`, use a token.
    LocalOnly,
}

impl Auth {
    /// A bearer token of at least 128 bits of entropy, as estimated from
    /// its length and the kinds of characters it holds (32 hex digits, 22
    /// random letters and digits; a guessable token is no protection; see
    /// [`Console::builder`](crate::Console::builder)).
    pub fn bearer(token: impl Into<String>) -> Auth {
        Auth::Bearer(token.into())
    }

    /// HTTP basic authentication with this user and password.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// No authentication (loopback development only).
    pub fn local_only() -> Auth {
        Auth::LocalOnly
    }

    /// What is wrong with this choice, if anything.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        match self {
            Auth::Bearer(t) if token_bits(t) < 128.0 => Some(
                "the console's bearer token must hold at least 128 bits of entropy \
                 (32 random hex digits, or 22 random letters and digits)",
            ),
            Auth::Basic { user, .. } if user.is_empty() || user.contains(':') => {
                Some("the console's basic user must be non-empty and hold no ':'")
            }
            Auth::Basic { password, .. } if password.chars().count() < 12 => {
                Some("the console's basic password must be at least 12 characters")
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::LocalOnly => f.write_str("LocalOnly"),
        }
    }
}

/// How much a token resists guessing, estimated: its length times the
/// bits a character of its kinds carries (hex digits 4; digits, lower and
/// upper case letters and symbols by how many of the kinds it mixes) — and
/// nothing for a token of fewer than 8 distinct characters.
pub(crate) fn token_bits(token: &str) -> f64 {
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    if distinct.len() < 8 {
        return 0.0;
    }
    let alphabet = if token.chars().all(|c| c.is_ascii_hexdigit()) {
        16
    } else {
        let mut n = 0;
        if token.chars().any(|c| c.is_ascii_digit()) {
            n += 10;
        }
        if token.chars().any(|c| c.is_ascii_lowercase()) {
            n += 26;
        }
        if token.chars().any(|c| c.is_ascii_uppercase()) {
            n += 26;
        }
        if token.chars().any(|c| !c.is_ascii_alphanumeric()) {
            n += 33;
        }
        n
    };
    token.chars().count() as f64 * f64::from(alphabet).log2()
}

/// The keys derived from the secret — under a key derived from the token or
/// password (the same across processes sharing the secret), or a random one
/// for [`Auth::LocalOnly`] — and the sessions this process ended.
pub(crate) struct Keys {
    auth: Auth,
    key: Vec<u8>,
    /// The session cookie's name.
    cookie: String,
    /// The CSRF token of a request without a session (authenticated by its
    /// `Authorization` header, or local).
    csrf: String,
    basic: Option<String>,
    /// How long a session lasts.
    lifetime: Duration,
    /// Sessions ended here (logout), with when they would have expired.
    ended: Mutex<HashMap<String, u64>>,
}

/// What a request proved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated.
    Ok,
    /// Not authenticated: the challenge to answer with.
    Denied,
    /// `LocalOnly` asked for by a `Host` that is not a loopback name.
    NotLocal,
}

/// Seconds since the epoch, now.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Keys {
    /// `host_only`: the cookie is `Secure` and the console at the root —
    /// its name then takes the `__Host-` prefix (no subdomain can set it).
    pub(crate) fn new(auth: Auth, lifetime: Duration, host_only: bool) -> Keys {
        let key: Vec<u8> = match &auth {
            Auth::Bearer(t) => mac(t.as_bytes(), b"plugipay-webhook-console key").to_vec(),
            Auth::Basic { user, password } => mac(
                format!("{user}:{password}").as_bytes(),
                b"plugipay-webhook-console key",
            )
            .to_vec(),
            Auth::LocalOnly => {
                let mut k = [0u8; 32];
                // No randomness: the token is still unguessable by a page
                // that cannot read the console (same-origin policy).
                if getrandom::fill(&mut k).is_err() {
                    k = mac(b"local", &std::process::id().to_le_bytes());
                }
                k.to_vec()
            }
        };
        let basic = match &auth {
            Auth::Basic { user, password } => Some(base64(format!("{user}:{password}").as_bytes())),
            _ => None,
        };
        let name = format!("{COOKIE}_{}", &hex(&mac(&key, b"cookie name"))[..8]);
        Keys {
            cookie: if host_only {
                format!("__Host-{name}")
            } else {
                name
            },
            csrf: hex(&mac(&key, b"csrf")),
            basic,
            auth,
            key,
            lifetime,
            ended: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The session cookie's name.
    pub(crate) fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// How long a session lasts.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session's cookie value: when it was issued, 128 random bits of
    /// its own, and a MAC of both under the console's key (any process
    /// sharing the secret accepts it until it expires).
    pub(crate) fn issue(&self) -> String {
        let at = now_secs();
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            // No randomness: unique still (time and a counter), never guessable
            // without the key that MACs it.
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            nonce[..8].copy_from_slice(&n.to_le_bytes());
            nonce[8..].copy_from_slice(&at.to_le_bytes());
        }
        let nonce = hex(&nonce);
        format!("{at}.{nonce}.{}", self.tag(at, &nonce))
    }

    fn tag(&self, at: u64, nonce: &str) -> String {
        hex(&mac(&self.key, format!("session {at} {nonce}").as_bytes()))
    }

    /// The request's session cookie, when it is one of this console's, not
    /// expired and not ended.
    pub(crate) fn session<'h>(&self, headers: &'h http::HeaderMap) -> Option<&'h str> {
        let value = cookie(headers, &self.cookie)?;
        let mut parts = value.split('.');
        let (at, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.len() != 32 {
            return None;
        }
        let issued: u64 = at.parse().ok()?;
        let now = now_secs();
        let fresh = issued <= now.saturating_add(60)
            && now.saturating_sub(issued) < self.lifetime.as_secs();
        let ended = self
            .ended
            .lock()
            .map(|e| e.contains_key(value))
            .unwrap_or(true);
        (eq(tag, &self.tag(issued, nonce)) && fresh && !ended).then_some(value)
    }

    /// Ends a session here: refused from now on, by this process.
    pub(crate) fn end(&self, session: &str) {
        let now = now_secs();
        let expires = session
            .split_once('.')
            .and_then(|(at, _)| at.parse::<u64>().ok())
            .map_or(now, |at| at.saturating_add(self.lifetime.as_secs()));
        if let Ok(mut ended) = self.ended.lock() {
            ended.retain(|_, until| *until > now);
            ended.insert(session.to_owned(), expires);
        }
    }

    /// The CSRF token of the request's forms: bound to its session when it
    /// has one (a token read from one session's page is refused in
    /// another's), else the console's own.
    pub(crate) fn csrf_for(&self, headers: &http::HeaderMap) -> String {
        match self.session(headers) {
            Some(session) => hex(&mac(&self.key, format!("csrf {session}").as_bytes())),
            None => self.csrf.clone(),
        }
    }

    /// Whether `token` is the bearer token.
    pub(crate) fn token_ok(&self, token: &str) -> bool {
        matches!(&self.auth, Auth::Bearer(t) if eq(token, t))
    }

    /// Checks a request's `Authorization` header and cookies.
    pub(crate) fn check(&self, headers: &http::HeaderMap) -> Verdict {
        match &self.auth {
            Auth::LocalOnly => {
                if headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(loopback_host)
                {
                    Verdict::Ok
                } else {
                    Verdict::NotLocal
                }
            }
            Auth::Bearer(token) => {
                let bearer = authorization(headers, "Bearer").is_some_and(|t| eq(t, token));
                if bearer || self.session(headers).is_some() {
                    Verdict::Ok
                } else {
                    Verdict::Denied
                }
            }
            Auth::Basic { .. } => {
                let expected = self.basic.as_deref().unwrap_or_default();
                if authorization(headers, "Basic").is_some_and(|t| eq(t, expected)) {
                    Verdict::Ok
                } else {
                    Verdict::Denied
                }
            }
        }
    }
}

/// Constant-time equality of two CSRF tokens.
pub(crate) fn same(a: &str, b: &str) -> bool {
    eq(a, b)
}

/// Whether a `Host` header names this machine's loopback: `localhost`,
/// `127.0.0.1` or `[::1]`, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1] or [::1]:port
        match rest.split_once(']') {
            Some((addr, tail)) if tail.is_empty() || tail.starts_with(':') => addr,
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "::1"
}

/// The credentials of an `Authorization: <scheme> <credentials>` header.
fn authorization<'h>(headers: &'h http::HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The value of the cookie `name`, from any `Cookie` header.
pub(crate) fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Constant-time equality (the lengths may differ, and that leaks only the
/// length).
fn eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn mac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (RFC 4648), as browsers send basic
/// credentials.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn each_scheme_accepts_its_credentials_only() {
        let day = Duration::from_secs(86_400);
        let bearer = Keys::new(Auth::bearer("t0k3n-t0k3n-t0k3n"), day, false);
        assert_eq!(
            bearer.check(&headers(&[("authorization", "Bearer t0k3n-t0k3n-t0k3n")])),
            Verdict::Ok
        );
        assert_eq!(
            bearer.check(&headers(&[("authorization", "Bearer t0k3n-t0k3n-t0k3X")])),
            Verdict::Denied
        );
        let session = bearer.issue();
        let cookie = format!("a=b; {}={session}", bearer.cookie_name());
        // Another console's cookie (another token) is not this one's.
        let other = Keys::new(Auth::bearer("another-token-another-token"), day, false);
        assert_ne!(other.cookie_name(), bearer.cookie_name());
        assert!(bearer.cookie_name().starts_with("plugipay_console_"));
        let theirs = format!("{}={}", other.cookie_name(), other.issue());
        assert_eq!(
            bearer.check(&headers(&[("cookie", &theirs)])),
            Verdict::Denied
        );
        assert_eq!(bearer.check(&headers(&[("cookie", &cookie)])), Verdict::Ok);
        // The cookie is not the token, and the token is not a cookie.
        assert!(!session.contains("t0k3n"));
        let raw = format!("{}=t0k3n-t0k3n-t0k3n", bearer.cookie_name());
        assert_eq!(bearer.check(&headers(&[("cookie", &raw)])), Verdict::Denied);
        assert_eq!(bearer.check(&headers(&[])), Verdict::Denied);

        let basic = Keys::new(Auth::basic("ops", "correct horse battery"), day, false);
        let good = format!("Basic {}", base64(b"ops:correct horse battery"));
        assert_eq!(
            basic.check(&headers(&[("authorization", &good)])),
            Verdict::Ok
        );
        let bad = format!("Basic {}", base64(b"ops:wrong"));
        assert_eq!(
            basic.check(&headers(&[("authorization", &bad)])),
            Verdict::Denied
        );
        assert_eq!(
            basic.check(&headers(&[("authorization", "Bearer x")])),
            Verdict::Denied
        );
        let local = Keys::new(Auth::LocalOnly, day, false);
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.1:9",
            "[::1]",
            "[::1]:3000",
        ] {
            assert_eq!(
                local.check(&headers(&[("host", host)])),
                Verdict::Ok,
                "{host}"
            );
        }
        // DNS rebinding: the attacker's name, now resolving to 127.0.0.1.
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "[::1]x",
            "[::2]:80",
            "",
        ] {
            assert_eq!(
                local.check(&headers(&[("host", host)])),
                Verdict::NotLocal,
                "{host:?}"
            );
        }
        assert_eq!(
            local.check(&headers(&[])),
            Verdict::NotLocal,
            "no Host at all"
        );
    }

    #[test]
    fn sessions_are_shared_by_processes_with_the_same_secret_and_end() {
        let day = Duration::from_secs(86_400);
        let (a, b) = (
            Keys::new(Auth::bearer("same-secret-same-secret"), day, false),
            Keys::new(Auth::bearer("same-secret-same-secret"), day, false),
        );
        let session = a.issue();
        let with = |v: &str| headers(&[("cookie", &format!("{}={v}", a.cookie_name()))]);
        assert_eq!(b.check(&with(&session)), Verdict::Ok, "another process");
        assert_ne!(a.issue(), a.issue(), "two sign-ins, two sessions");
        // The CSRF token is the session's: another session's is another.
        assert_eq!(a.csrf_for(&with(&session)), b.csrf_for(&with(&session)));
        let later = format!("{}.{}.{}", now_secs() + 1, "0".repeat(32), "0".repeat(64));
        assert_ne!(a.csrf_for(&with(&session)), a.csrf_for(&headers(&[])));
        assert_eq!(
            a.csrf_for(&with(&later)),
            a.csrf_for(&headers(&[])),
            "a forged session has none"
        );
        // Expired: issued a day ago.
        let nonce = "0123456789abcdef0123456789abcdef";
        let old = now_secs() - 86_400;
        let expired = format!("{old}.{nonce}.{}", a.tag(old, nonce));
        assert_eq!(a.check(&with(&expired)), Verdict::Denied, "expired");
        // Issued in the future (beyond a minute of skew): refused.
        let ahead = now_secs() + 3_600;
        let future = format!("{ahead}.{nonce}.{}", a.tag(ahead, nonce));
        assert_eq!(a.check(&with(&future)), Verdict::Denied, "from the future");
        // Ended here: refused here.
        a.end(&session);
        assert_eq!(a.check(&with(&session)), Verdict::Denied, "ended");
        let c = Keys::new(Auth::bearer("other-secret-other-secret"), day, false);
        assert_eq!(c.check(&with(&session)), Verdict::Denied);
        assert!(
            Keys::new(Auth::bearer("same-secret-same-secret"), day, true)
                .cookie_name()
                .starts_with("__Host-plugipay_console_")
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!(
            "{:?} {:?}",
            Auth::bearer("s3cr3t-token-value"),
            Auth::basic("ops", "hunter2-hunter2")
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(Auth::bearer("short").problem().is_some());
        assert!(Auth::basic("ops", "short").problem().is_some());
        // 128 bits: 32 hex digits, 22 mixed letters and digits.
        assert!(Auth::bearer("0123456789abcdef0123456789abcde")
            .problem()
            .is_some());
        assert!(Auth::bearer("0123456789abcdef0123456789abcdef")
            .problem()
            .is_none());
        assert!(Auth::bearer("aB3dE5gH7jK9mN1pQ2sT4").problem().is_some());
        assert!(Auth::bearer("aB3dE5gH7jK9mN1pQ2sT4v").problem().is_none());
        // Long but of few characters: nothing.
        assert!(Auth::bearer("ab".repeat(40)).problem().is_some());
        assert!(Auth::bearer("long-enough-token").problem().is_some());
    }
}
