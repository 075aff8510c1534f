//! The `VerifiedEvent` data guard, its sentinel and the JSON catchers.

use std::io::Cursor;
use std::ops::Deref;

use plugipay_webhook::{Rejection, Verifier, WebhookEvent, SIGNATURE_HEADER};
use rocket::catcher::{self, Catcher};
use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::{Ignite, Request, Response, Rocket, Sentinel};

/// A verified Plugipay delivery: a Rocket data guard.
///
/// Takes the [`Verifier`] from managed state (`rocket.manage(verifier)`; a
/// rocket without one refuses to launch, through this type's [`Sentinel`]),
/// reads the body with `data.open(limit)` under the verifier's limit and read
/// deadline, verifies it, and hands the handler the event. On failure the
/// guard answers `Outcome::Error((status, rejection))` and remembers the
/// rejection for the [`catchers`], which render the shared JSON body.
///
/// Dereferences to [`WebhookEvent`].
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
#[derive(Debug, Clone)]
pub struct VerifiedEvent(pub WebhookEvent);

impl VerifiedEvent {
    /// The event.
    #[must_use]
    pub fn into_inner(self) -> WebhookEvent {
        self.0
    }
}

impl Deref for VerifiedEvent {
    type Target = WebhookEvent;

    fn deref(&self) -> &WebhookEvent {
        &self.0
    }
}

/// The rejection of this request, for the catchers.
struct Cached(Option<Rejection>);

fn fail<'r>(req: &'r Request<'_>, rejection: Rejection) -> data::Outcome<'r, VerifiedEvent> {
    if matches!(rejection, Rejection::VerifierMissing) {
        tracing::error!("plugipay webhook: no Verifier is managed by this rocket; answering 500");
    }
    let status = Status::new(rejection.status());
    req.local_cache(|| Cached(Some(rejection.clone())));
    Outcome::Error((status, rejection))
}

#[rocket::async_trait]
impl<'r> FromData<'r> for VerifiedEvent {
    type Error = Rejection;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let Some(verifier) = req.rocket().state::<Verifier>() else {
            return fail(req, Rejection::VerifierMissing);
        };
        let headers = req.headers();
        let declared = headers
            .get_one("Content-Length")
            .and_then(|v| plugipay_webhook::content_length(v.as_bytes()));
        // Header rules and the declared length, before the body is touched.
        // (Rocket has already dropped header values that are not UTF-8.)
        let signature =
            match verifier.precheck(headers.get(SIGNATURE_HEADER).map(str::as_bytes), declared) {
                Ok(s) => s,
                Err(r) => return fail(req, r),
            };
        let limits = verifier.limits();
        let read = data.open((limits.body_limit as u64).bytes()).into_bytes();
        let body = match tokio::time::timeout(limits.read_timeout, read).await {
            Err(_) => {
                tracing::debug!("plugipay webhook rejected: body read deadline passed");
                return fail(req, Rejection::BodyTimeout);
            }
            Ok(Err(_)) => {
                tracing::debug!("plugipay webhook rejected: the body stream failed");
                return fail(req, Rejection::BodyReadFailed);
            }
            // An incomplete read means the body went past the limit.
            Ok(Ok(capped)) if !capped.is_complete() => {
                tracing::debug!("plugipay webhook rejected: body too large");
                return fail(req, Rejection::PayloadTooLarge);
            }
            Ok(Ok(capped)) => capped.into_inner(),
        };
        match verifier.complete(body.into(), &signature) {
            Ok(event) => Outcome::Success(VerifiedEvent(event)),
            Err(r) => fail(req, r),
        }
    }
}

impl Sentinel for VerifiedEvent {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        if rocket.state::<Verifier>().is_none() {
            tracing::error!(
                "plugipay webhook: a route takes VerifiedEvent but no Verifier is managed; \
                 call .manage(Verifier::from_env()?) before launch"
            );
            return true;
        }
        false
    }
}

/// Catchers for 400, 408, 413 and 500 that render the guard's rejection as
/// the shared JSON (`{"error":"<code>"}`, `Content-Type: application/json`,
/// `Connection: close` after 408 and 413). A request the guard did not
/// reject gets Rocket's default error page, so register them on the webhook
/// route's base path (`.register("/webhooks", catchers())`), not on `/`.
#[must_use]
pub fn catchers() -> Vec<Catcher> {
    [400, 408, 413, 500]
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
        let Some(rejection) = cached.0.as_ref().filter(|r| r.status() == status.code) else {
            return Catcher::default().handler.handle(status, req).await;
        };
        let body = rejection.body();
        let mut resp = Response::build();
        resp.status(status)
            .sized_body(body.len(), Cursor::new(body));
        for (name, value) in rejection.headers() {
            resp.raw_header(*name, *value);
        }
        Ok(resp.finalize())
    })
}
