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
mod builder;
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

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

pub use auth::{Auth, COOKIE};
pub use builder::{ConfigError, ConsoleBuilder, DEFAULT_SESSION_LIFETIME};
pub use request::MAX_FORM_BYTES;
pub use service::ConsoleService;
pub use state::Console;

use reply::{plain, redirect};
use request::Req;

/// The Content-Security-Policy every response carries: nothing but the
/// console's own stylesheet, no script, no framing, forms posting only to
/// the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl Console {
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
