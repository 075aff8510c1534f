//! The inbox's pages: overview, events, one event, the retry
//! confirmations (a module each), and what they share — a message page,
//! an event's address, the login form. Each composes `components` in
//! maud's `html!`, which escapes every value it is given; nothing here
//! writes markup as text.

mod event;
mod events;
mod overview;
mod retry;

pub(crate) use event::event;
pub(crate) use events::events;
pub(crate) use overview::overview;
pub(crate) use retry::{confirm_retry, retry_many, retry_one};

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;
use plugipay_webhook_dispatch::StoreError;

use crate::form::{encode, query};
use crate::reply::html_response;
use crate::state::Console;

/// A page of its own: `title` and one sentence.
pub(crate) fn message(c: &Console, status: StatusCode, title: &str, text: &str) -> Response<Bytes> {
    let body = html! { h1 { (title) } p { (text) } };
    html_response(status, c.frame(title, "").page(body))
}

/// The answer to a retry a console does not offer.
pub(crate) fn no_retries(c: &Console) -> Response<Bytes> {
    if c.read_only() {
        message(
            c,
            StatusCode::FORBIDDEN,
            "Read-only",
            "This console is read-only: it changes nothing.",
        )
    } else {
        message(
            c,
            StatusCode::FORBIDDEN,
            "No retries here",
            "This console does not retry events: no worker drains its inbox.",
        )
    }
}

pub(crate) fn not_found(c: &Console) -> Response<Bytes> {
    message(
        c,
        StatusCode::NOT_FOUND,
        "Not found",
        "The console has no such page.",
    )
}

pub(crate) fn unavailable(c: &Console, e: &StoreError) -> Response<Bytes> {
    message(
        c,
        StatusCode::SERVICE_UNAVAILABLE,
        "The inbox does not answer",
        &format!("{e}. Reload to try again."),
    )
}

/// The event page's address for `r` (type and tenant tell apart events
/// sharing an id).
pub(crate) fn event_href(c: &Console, id: &str, event_type: &str, tenant: &str) -> String {
    if matches!(id, "" | "." | "..") {
        // Not a path segment: an empty one cannot be routed, and browsers
        // resolve `.` and `..` — and `%2E`, `%2E%2E` — as dot segments, so
        // the link would open another page. The id goes in the query.
        let rest = query(&[("type", Some(event_type)), ("tenant", Some(tenant))]);
        let rest = rest
            .strip_prefix('?')
            .map(|r| format!("&{r}"))
            .unwrap_or_default();
        return format!("{}/event?id={}{rest}", c.base(), encode(id));
    }
    format!(
        "{}/events/{}{}",
        c.base(),
        encode(id),
        query(&[("type", Some(event_type)), ("tenant", Some(tenant))])
    )
}

pub(crate) fn login(c: &Console, wrong: bool) -> Response<Bytes> {
    let base = c.base();
    let status = if wrong {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Sign in" }
        @if wrong { p role="alert" class="error" { "That token is not the console's." } }
        form method="post" action={ (base) "/login" } {
            p {
                label for="token" { "Console token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    html_response(status, c.frame("Sign in", "").page(body))
}
