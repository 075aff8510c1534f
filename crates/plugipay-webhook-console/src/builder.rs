//! Building a [`Console`]: its base path, its authentication and
//! sessions, read-only or not, the verifiers that re-check stored bytes,
//! and a development receiver's deliveries.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::Verifier;
use plugipay_webhook_dispatch::inbox::Inbox;

use crate::auth::{self, Auth};
use crate::dev;
use crate::state::{Console, Inner};

/// How long a console session lasts after sign-in unless
/// [`ConsoleBuilder::session_lifetime`] says otherwise: 12 hours.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Builds a [`Console`]: [`Console::builder`].
#[must_use]
pub struct ConsoleBuilder {
    inbox: Inbox,
    auth: Auth,
    base: String,
    read_only: bool,
    secure_cookie: bool,
    session_lifetime: Duration,
    verifier: Option<Verifier>,
    tenants: HashMap<String, Verifier>,
    retries: bool,
    deliveries: Option<Arc<dyn dev::Deliveries>>,
}

impl fmt::Debug for ConsoleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleBuilder")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .field("read_only", &self.read_only)
            .field("retries", &self.retries)
            .field("deliveries", &self.deliveries.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a console cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(&'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConsoleBuilder {
    /// The path the console is mounted at (default `/console`): its links
    /// and its cookie's `Path` start with it. Requests may arrive with it
    /// (a service at the root, [`Console::router`]) or without it (a
    /// framework that strips a scope's prefix).
    pub fn base(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_owned();
        self
    }

    /// No retry controls, and every `POST` answered `403`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether the login cookie is `Secure` — sent over HTTPS only (the
    /// default; at the root base its name then takes the `__Host-` prefix).
    /// `false` only for a console served over plain HTTP in development
    /// (`listen --ui`, `inbox ui` on a loopback address).
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// How long a session lasts after sign-in (default
    /// [`DEFAULT_SESSION_LIFETIME`], 12 h): the cookie's `Max-Age`, and
    /// checked by the console itself on every request.
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// The secrets events without a tenant were verified with: each event's
    /// page says whether its stored bytes still verify at the time they
    /// were received (tamper evidence, as `plugipay-webhook inbox show`).
    pub fn verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// One tenant's secrets, for its events' verification.
    pub fn tenant_verifier(mut self, tenant: impl Into<String>, verifier: Verifier) -> Self {
        self.tenants.insert(tenant.into(), verifier);
        self
    }

    /// Whether the console offers to retry events (default yes). A console
    /// over an inbox that no worker drains — a development receiver's
    /// record of what it verified — turns them off: a retried event would
    /// only wait.
    pub fn retries(mut self, retries: bool) -> Self {
        self.retries = retries;
        self
    }

    /// A development receiver's deliveries: adds the Deliveries pages
    /// (every request, verified or not, with its verdict and diagnosis; a
    /// diff of two; Replay; pin). See [`dev`].
    pub fn deliveries(mut self, deliveries: impl dev::Deliveries) -> Self {
        self.deliveries = Some(Arc::new(deliveries));
        self
    }

    /// The console, or why not (a bearer token under 128 bits of entropy, a
    /// basic password under 12 characters, a base path that is not
    /// absolute).
    pub fn build(self) -> Result<Console, ConfigError> {
        if let Some(problem) = self.auth.problem() {
            return Err(ConfigError(problem));
        }
        if !self.base.is_empty() && !self.base.starts_with('/') {
            return Err(ConfigError("the console's base path must start with '/'"));
        }
        if self
            .base
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~')))
        {
            return Err(ConfigError(
                "the console's base path may hold only letters, digits, '/', '-', '_', '.', '~'",
            ));
        }
        Ok(Console {
            inner: Arc::new(Inner {
                inbox: self.inbox,
                keys: auth::Keys::new(
                    self.auth,
                    self.session_lifetime,
                    self.secure_cookie && self.base.is_empty(),
                ),
                base: self.base,
                read_only: self.read_only,
                secure_cookie: self.secure_cookie,
                verifier: self.verifier,
                tenants: self.tenants,
                retries: self.retries,
                deliveries: self.deliveries,
            }),
            request: None,
        })
    }
}

impl Console {
    /// A builder over `inbox`, authenticating with `auth`.
    pub fn builder(inbox: Inbox, auth: Auth) -> ConsoleBuilder {
        ConsoleBuilder {
            inbox,
            auth,
            base: "/console".to_owned(),
            read_only: false,
            secure_cookie: true,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            verifier: None,
            tenants: HashMap::new(),
            retries: true,
            deliveries: None,
        }
    }
}
