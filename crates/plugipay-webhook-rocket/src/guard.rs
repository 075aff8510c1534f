//! The `VerifiedEvent` data guard, its sentinel and the JSON catchers.

use std::io::Cursor;

use plugipay_webhook::http::{
    receive, HeaderValues, ReaderStream, Rejection, RequestHead, VerifierSource, Verifiers,
};
use plugipay_webhook::Verifier;
use rocket::catcher::{self, Catcher};
use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::{Ignite, Request, Response, Rocket, Sentinel};

plugipay_webhook::__define_adapter_types!(
    framework: "Rocket",
    status: Status,
    convert: |s| Status::new(s.as_u16()),
);

/// The name of the body limit in Rocket's `limits` configuration (e.g.
/// `ROCKET_LIMITS={plugipay-webhook="2MiB"}` or `[default.limits]
/// plugipay-webhook = "2MiB"` in `Rocket.toml`). When set, it replaces the
/// verifier's body limit for requests Rocket serves.
pub const LIMIT_NAME: &str = "plugipay-webhook";

/// An `http` 1.x response (the core's and the dispatcher's answers) as a
/// Rocket response.
pub(crate) fn respond(resp: http::Response<bytes::Bytes>) -> Response<'static> {
    let (parts, body) = resp.into_parts();
    let mut out = Response::build();
    out.status(Status::new(parts.status.as_u16()))
        .sized_body(body.len(), Cursor::new(body));
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            out.raw_header(name.as_str().to_owned(), value.to_owned());
        }
    }
    out.finalize()
}

/// The request head, as the core reads it.
struct Head<'a, 'r>(&'a Request<'r>);

impl RequestHead for Head<'_, '_> {
    fn path(&self) -> &str {
        self.0.uri().path().as_str()
    }

    fn header_values(&self, name: &str) -> HeaderValues<'_> {
        // Rocket has already dropped header values that are not UTF-8.
        self.0.headers().get(name).map(str::as_bytes).collect()
    }

    fn body_limit(&self) -> Option<usize> {
        self.0
            .limits()
            .get(LIMIT_NAME)
            .map(|limit| usize::try_from(limit.as_u64()).unwrap_or(usize::MAX))
    }
}

/// The verifier source this rocket manages: `Verifiers` first, then `Verifier`.
fn source(rocket: &Rocket<impl rocket::Phase>) -> Option<&dyn VerifierSource> {
    match rocket.state::<Verifiers>() {
        Some(v) => Some(v),
        None => rocket.state::<Verifier>().map(|v| v as &dyn VerifierSource),
    }
}

/// The rejection of this request, for the catchers.
struct Cached(Option<Rejection>);

/// Verifies the delivery as a Rocket data guard.
///
/// Takes the verifier from managed state — a [`Verifier`] or
/// [`Verifiers`] (per route, per tenant); a rocket without either refuses to
/// launch, through this type's [`Sentinel`] — reads the raw body under the
/// limit (Rocket's `limits.plugipay-webhook` when configured, else the
/// verifier's) and the read deadline, verifies it, and hands the handler the
/// event. On failure the guard answers `Outcome::Error((status,
/// rejection))` and remembers the rejection for the [`catchers`], which
/// render the shared JSON body.
///
/// ```
/// use rocket::http::Status;
/// use plugipay_webhook::Verifier;
/// use plugipay_webhook_rocket::{catchers, VerifiedEvent};
///
/// #[rocket::post("/plugipay", data = "<event>")]
/// fn webhook(event: VerifiedEvent) -> Status {
///     println!("{} {}", event.id(), event.event_type());
///     Status::NoContent
/// }
///
/// let rocket = rocket::build()
///     .manage(Verifier::new("whsec_…"))
///     .mount("/webhooks", rocket::routes![webhook])
///     .register("/webhooks", catchers());
/// ```
#[rocket::async_trait]
impl<'r> FromData<'r> for VerifiedEvent {
    type Error = WebhookRejection;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        // The core stops reading at the limit; Rocket's own cap is not needed.
        // With the declared length the body is read into one buffer of that
        // size: no zeroing, no copy, one chunk.
        let declared = req
            .headers()
            .get_one("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = ReaderStream::with_size_hint(data.open(u64::MAX.bytes()), declared);
        match receive(source(req.rocket()), &Head(req), body).await {
            Ok(event) => Outcome::Success(VerifiedEvent(event)),
            Err(rejection) => {
                req.local_cache(|| Cached(Some(rejection.clone())));
                let rejection = WebhookRejection(rejection);
                Outcome::Error((rejection.status(), rejection))
            }
        }
    }
}

impl Sentinel for VerifiedEvent {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        if source(rocket).is_none() {
            tracing::error!(
                "plugipay webhook: a route takes VerifiedEvent but no Verifier (or Verifiers) is managed; \
                 call .manage(Verifier::from_env()?) before launch"
            );
            return true;
        }
        false
    }
}

/// Catchers for 400, 404, 408, 413, 500 and 503 that render the guard's
/// rejection as the shared JSON (`{"error":"<code>"}`, `Content-Type:
/// application/json`, `Connection: close` after 408, 413 and a failed body,
/// `Retry-After` on 503). A request the guard did not reject gets Rocket's
/// default error page, so register them on the webhook route's base path
/// (`.register("/webhooks", catchers())`), not on `/`.
#[must_use]
pub fn catchers() -> Vec<Catcher> {
    [400, 404, 408, 413, 500, 503]
        .into_iter()
        .map(|code| {
            let mut c = Catcher::new(code, json_catcher);
            c.name = Some("plugipay_webhook_rocket::catchers".into());
            c
        })
        .collect()
}

fn json_catcher<'r>(status: Status, req: &'r Request<'_>) -> catcher::BoxFuture<'r> {
    Box::pin(async move {
        let cached = req.local_cache(|| Cached(None));
        let Some(rejection) = cached
            .0
            .as_ref()
            .filter(|r| r.status().as_u16() == status.code)
        else {
            return Catcher::default().handler.handle(status, req).await;
        };
        Ok(respond(rejection.to_response()))
    })
}
