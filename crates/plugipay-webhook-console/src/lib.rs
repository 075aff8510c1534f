#![doc = include_str!("../README.md")]
//!
//! ## Routes
//!
//! Routes, under the mount's base (`/console` by default): `GET /` the
//! overview, `GET /events?state=&type=&tenant=&object=&id=&from=&to=` the
//! list (newest first, keyset-paginated with `after=`), `GET /events/{id}`
//! one event (`?type=` and `?tenant=` tell apart events sharing an id),
//! `POST /events/{id}/retry`, `GET|POST /retry?state=dead|skipped&type=` every
//! dead or skipped event of a type, `GET /login` (the form) and `POST
//! /login` (it posts the token; `GET /login?token=` signs in too and
//! redirects to a URL without the token), `POST /logout`.
//!
//! With [`ConsoleBuilder::deliveries`] (a development receiver's, as
//! `plugipay-webhook listen --ui`): `GET /deliveries?verdict=&pinned=` every
//! delivery, verified or not, `GET /deliveries/{n}` one (verdict, the
//! `verify --explain` diagnosis, headers, body), `GET /deliveries/diff?a=&b=`
//! the JSON diff of two, `POST /deliveries/{n}/replay`,
//! `POST /deliveries/{n}/pin`.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "postgres", feature = "sqlite", feature = "redis")))]
compile_error!("plugipay-webhook-console: enable one of the features postgres, sqlite, redis");

mod auth;
mod components;
pub mod dev;
mod dev_pages;
mod diff;
mod form;
mod html;
mod pages;
mod reply;
mod request;
mod service;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use plugipay_webhook::Verifier;
use plugipay_webhook_dispatch::inbox::Inbox;

pub use auth::{Auth, COOKIE};
pub use request::MAX_FORM_BYTES;
pub use service::ConsoleService;
pub use state::Console;

use reply::{plain, redirect};
use request::Req;
use state::Inner;

/// The Content-Security-Policy every response carries: nothing but the
/// console's own stylesheet, no script, no framing, forms posting only to
/// the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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

    /// Answers one request. The path may carry the base or not; a body over
    /// [`MAX_FORM_BYTES`] must be refused before (the [service](Console::service)
    /// and [router](Console::router) do).
    pub async fn respond(&self, request: Request<Bytes>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let full = parts.uri.path();
        let base = self.inner.base.as_str();
        let path = match full.strip_prefix(base) {
            Some(rest) if !base.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
            _ => full,
        };
        if path.is_empty() {
            return redirect(&format!("{base}/"));
        }
        let req = Req {
            method: parts.method,
            path: path.to_owned(),
            query: form::pairs(parts.uri.query().unwrap_or("")),
            headers: parts.headers,
            body,
        };
        secure(self.route(req).await)
    }

    /// Answers one request given as text and bytes, for frameworks that do
    /// not speak `http` 1.x (actix-web 4 is on `http` 0.2, Rocket has types
    /// of its own): the method, the path and query, each header's name and
    /// value. A method, target or header that `http` cannot hold is `400`.
    /// The body limit is the caller's, as for [`respond`](Console::respond).
    pub async fn respond_with<'h>(
        &self,
        method: &str,
        uri: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        body: Bytes,
    ) -> Response<Bytes> {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        match request.body(body) {
            Ok(request) => self.respond(request).await,
            Err(_) => secure(plain(
                StatusCode::BAD_REQUEST,
                "not an HTTP request the console can read\n",
            )),
        }
    }

    async fn route(&self, req: Req) -> Response<Bytes> {
        let i = &self.inner;
        if req.path == "/static/console.css" && req.method == Method::GET {
            let mut r = Response::new(Bytes::from_static(include_bytes!("../static/console.css")));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            );
            return r;
        }
        if req.path == "/login" && (req.method == Method::GET || req.method == Method::POST) {
            return self.login(&req);
        }
        match i.keys.check(&req.headers) {
            auth::Verdict::Ok => {}
            auth::Verdict::Denied => return self.challenge(&req),
            auth::Verdict::NotLocal => {
                return plain(
                    StatusCode::FORBIDDEN,
                    "this console answers only on localhost, 127.0.0.1 or [::1]\n",
                )
            }
        }
        // This request's view: its forms carry its session's CSRF token.
        let session = i.keys.session(&req.headers).map(str::to_owned);
        let this = Console {
            inner: self.inner.clone(),
            request: Some(Arc::new((i.keys.csrf_for(&req.headers), session.is_some()))),
        };
        if req.path == "/logout" && req.method == Method::POST {
            return this.logout(&req, session.as_deref());
        }
        this.route_authenticated(req).await
    }

    async fn route_authenticated(&self, req: Req) -> Response<Bytes> {
        let i = &self.inner;
        let segments: Vec<&str> = req.path[1..].split('/').collect();
        if let (Some(dev), ["deliveries", ..]) = (&i.deliveries, segments.as_slice()) {
            return self.route_deliveries(&**dev, &req, &segments[1..]).await;
        }
        match (&req.method, segments.as_slice()) {
            (&Method::GET, [""]) => pages::overview(self).await,
            (&Method::GET, ["events"]) => pages::events(self, &req).await,
            (&Method::GET, ["events", id]) if !id.is_empty() => {
                pages::event(self, &req, &form::decode(id)).await
            }
            // An id no path segment can carry (``, `.`, `..`): see
            // `pages::event_href`.
            (&Method::GET, ["event"]) => match req.query.iter().find(|(k, _)| k == "id") {
                Some((_, id)) => pages::event(self, &req, &id.clone()).await,
                None => pages::not_found(self),
            },
            (&Method::GET, ["retry"]) => pages::confirm_retry(self, &req).await,
            (&Method::POST, rest) => {
                if i.read_only {
                    return pages::message(
                        self,
                        StatusCode::FORBIDDEN,
                        "Read-only",
                        "This console is read-only: it changes nothing.",
                    );
                }
                if !self.can_retry() {
                    return pages::no_retries(self);
                }
                let form = match self.form(&req) {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                match rest {
                    ["events", id, "retry"] if !id.is_empty() => {
                        pages::retry_one(self, &form::decode(id), &form).await
                    }
                    // An id no path segment can carry, as a field.
                    ["event", "retry"] => match form.iter().find(|(k, _)| k == "id") {
                        Some((_, id)) => pages::retry_one(self, &id.clone(), &form).await,
                        None => pages::not_found(self),
                    },
                    ["retry"] => pages::retry_many(self, &form).await,
                    _ => pages::not_found(self),
                }
            }
            (&Method::GET | &Method::HEAD, _) => pages::not_found(self),
            _ => self.method_not_allowed(),
        }
    }

    /// The development receiver's pages, under `/deliveries`.
    async fn route_deliveries(
        &self,
        dev: &dyn dev::Deliveries,
        req: &Req,
        rest: &[&str],
    ) -> Response<Bytes> {
        match (&req.method, rest) {
            (&Method::GET, []) => dev_pages::list(self, dev, req).await,
            (&Method::GET, ["diff"]) => dev_pages::compare(self, dev, req).await,
            (&Method::GET, [seq]) => dev_pages::one(self, dev, req, seq).await,
            (&Method::POST, [seq, action @ ("pin" | "replay")]) => {
                if self.inner.read_only {
                    return pages::no_retries(self);
                }
                let form = match self.form(req) {
                    Ok(form) => form,
                    Err(response) => return response,
                };
                if *action == "pin" {
                    dev_pages::pin(self, dev, seq, &form).await
                } else {
                    dev_pages::replay(self, dev, seq).await
                }
            }
            (&Method::GET | &Method::HEAD | &Method::POST, _) => pages::not_found(self),
            _ => self.method_not_allowed(),
        }
    }

    fn method_not_allowed(&self) -> Response<Bytes> {
        let mut r = pages::message(
            self,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "The console answers GET, and POST for its forms.",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
        r
    }

    /// A POST's form, once its origin, type and CSRF token are checked.
    #[allow(clippy::result_large_err)]
    fn form(&self, req: &Req) -> Result<Vec<(String, String)>, Response<Bytes>> {
        let refuse = |why: &str| pages::message(self, StatusCode::FORBIDDEN, "Refused", why);
        if req.cross_site() {
            return Err(refuse(
                "A request from another site cannot change the inbox.",
            ));
        }
        let urlencoded = req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if !urlencoded || req.body.len() > MAX_FORM_BYTES {
            return Err(pages::message(
                self,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Not a form",
                "The console's forms post application/x-www-form-urlencoded fields.",
            ));
        }
        let form = form::pairs(&String::from_utf8_lossy(&req.body));
        if !form::get(&form, "csrf").is_some_and(|given| auth::same(given, self.csrf())) {
            return Err(refuse(
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            ));
        }
        Ok(form)
    }

    /// Sign-in. `GET /login` is the form, which posts the token; a
    /// `GET /login?token=` link (what `listen --ui` prints) signs in too and
    /// redirects at once, so the token leaves the address bar and history;
    /// a wrong one lands on the form without it.
    fn login(&self, req: &Req) -> Response<Bytes> {
        let keys = &self.inner.keys;
        let base = &self.inner.base;
        match keys.auth() {
            Auth::Bearer(_) => {}
            Auth::LocalOnly => return redirect(&format!("{base}/")),
            Auth::Basic { .. } => return self.challenge(req),
        }
        let given = if req.method == Method::POST {
            if req.cross_site() {
                return pages::message(
                    self,
                    StatusCode::FORBIDDEN,
                    "Refused",
                    "A sign-in from another site is refused.",
                );
            }
            let form = form::pairs(&String::from_utf8_lossy(&req.body));
            form::get(&form, "token").map(str::to_owned)
        } else {
            req.q("token").map(str::to_owned)
        };
        match given {
            Some(token) if keys.token_ok(&token) => {
                // A development receiver's console opens on what it was
                // sent; an inbox's on its overview.
                let landing = if self.inner.deliveries.is_some() {
                    format!("{base}/deliveries")
                } else {
                    format!("{base}/")
                };
                let mut r = redirect(&landing);
                let cookie = format!(
                    "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{}",
                    keys.cookie_name(),
                    keys.issue(),
                    if base.is_empty() { "/" } else { base },
                    keys.lifetime().as_secs(),
                    if self.inner.secure_cookie {
                        "; Secure"
                    } else {
                        ""
                    }
                );
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            // A wrong token in a link: to the form, the token off the URL.
            Some(_) if req.method == Method::GET => redirect(&format!("{base}/login?failed=1")),
            Some(_) => pages::login(self, true),
            None => pages::login(self, req.q("failed").is_some()),
        }
    }

    /// Sign-out: the session ends (refused by this process from now on;
    /// the cookie is cleared), back to the form.
    fn logout(&self, req: &Req, session: Option<&str>) -> Response<Bytes> {
        if let Err(refused) = self.form(req) {
            return refused;
        }
        let keys = &self.inner.keys;
        let base = &self.inner.base;
        if let Some(session) = session {
            keys.end(session);
        }
        let mut r = redirect(&format!("{base}/login"));
        let cookie = format!(
            "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Strict{}",
            keys.cookie_name(),
            if base.is_empty() { "/" } else { base },
            if self.inner.secure_cookie {
                "; Secure"
            } else {
                ""
            }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }

    /// The answer to an unauthenticated request: a browser's page request
    /// goes to the login page (bearer) or gets the basic prompt; anything
    /// else is `401`.
    fn challenge(&self, req: &Req) -> Response<Bytes> {
        match self.inner.keys.auth() {
            Auth::Bearer(_) if req.wants_html() && req.method == Method::GET => {
                redirect(&format!("{}/login", self.inner.base))
            }
            Auth::Bearer(_) => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"plugipay console\""),
                );
                r
            }
            _ => {
                let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required\n");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"plugipay console\", charset=\"UTF-8\""),
                );
                r
            }
        }
    }
}

/// The headers every answer carries.
fn secure(mut r: Response<Bytes>) -> Response<Bytes> {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
