//! Who may look: the mount's explicit choice of authentication, the login
//! cookie, and the CSRF token every state-changing request carries.

use std::fmt;

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
    /// `Authorization: Bearer <token>`, or the session cookie that
    /// `GET <base>/login?token=<token>` sets (`HttpOnly`, `SameSite=Strict`).
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
    /// A bearer token (at least 16 characters: a guessable token is no
    /// protection; see [`Console::builder`](crate::Console::builder)).
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
            Auth::Bearer(t) if t.chars().count() < 16 => {
                Some("the console's bearer token must be at least 16 characters")
            }
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

/// The values derived from the secret: the session cookie's value and the
/// CSRF token, both MACs under a key derived from the token or password (the
/// same across processes sharing the secret), or under a random key for
/// [`Auth::LocalOnly`].
pub(crate) struct Keys {
    auth: Auth,
    session: String,
    /// The session cookie's name.
    cookie: String,
    csrf: String,
    basic: Option<String>,
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

impl Keys {
    pub(crate) fn new(auth: Auth) -> Keys {
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
        Keys {
            cookie: format!("{COOKIE}_{}", &hex(&mac(&key, b"cookie name"))[..8]),
            session: hex(&mac(&key, b"session")),
            csrf: hex(&mac(&key, b"csrf")),
            basic,
            auth,
        }
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The session cookie's name.
    pub(crate) fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// The session cookie's value.
    pub(crate) fn session(&self) -> &str {
        &self.session
    }

    /// The CSRF token put in every form.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `given` is the CSRF token.
    pub(crate) fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| eq(g, &self.csrf))
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
                if bearer || cookie(headers, &self.cookie).is_some_and(|c| eq(c, &self.session)) {
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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
        let bearer = Keys::new(Auth::bearer("t0k3n-t0k3n-t0k3n"));
        assert_eq!(
            bearer.check(&headers(&[("authorization", "Bearer t0k3n-t0k3n-t0k3n")])),
            Verdict::Ok
        );
        assert_eq!(
            bearer.check(&headers(&[("authorization", "Bearer t0k3n-t0k3n-t0k3X")])),
            Verdict::Denied
        );
        let cookie = format!("a=b; {}={}", bearer.cookie_name(), bearer.session());
        // Another console's cookie (another token) is not this one's.
        let other = Keys::new(Auth::bearer("another-token-another-token"));
        assert_ne!(other.cookie_name(), bearer.cookie_name());
        assert!(bearer.cookie_name().starts_with("plugipay_console_"));
        let theirs = format!("{}={}", other.cookie_name(), other.session());
        assert_eq!(
            bearer.check(&headers(&[("cookie", &theirs)])),
            Verdict::Denied
        );
        assert_eq!(bearer.check(&headers(&[("cookie", &cookie)])), Verdict::Ok);
        // The cookie is not the token, and the token is not a cookie.
        assert_ne!(bearer.session(), "t0k3n-t0k3n-t0k3n");
        let raw = format!("{}=t0k3n-t0k3n-t0k3n", bearer.cookie_name());
        assert_eq!(bearer.check(&headers(&[("cookie", &raw)])), Verdict::Denied);
        assert_eq!(bearer.check(&headers(&[])), Verdict::Denied);

        let basic = Keys::new(Auth::basic("ops", "correct horse battery"));
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
        let local = Keys::new(Auth::LocalOnly);
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
    fn tokens_are_shared_by_processes_with_the_same_secret() {
        let (a, b) = (
            Keys::new(Auth::bearer("same-secret-same-secret")),
            Keys::new(Auth::bearer("same-secret-same-secret")),
        );
        assert_eq!(a.csrf(), b.csrf());
        assert!(a.csrf_ok(Some(b.csrf())));
        assert!(!a.csrf_ok(None));
        assert!(!a.csrf_ok(Some("")));
        let c = Keys::new(Auth::bearer("other-secret-other-secret"));
        assert_ne!(a.csrf(), c.csrf());
        assert_ne!(a.session(), a.csrf());
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
        assert!(Auth::bearer("long-enough-token").problem().is_none());
    }
}
