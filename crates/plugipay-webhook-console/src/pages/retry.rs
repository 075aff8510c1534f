//! Retries: one event's, and every dead or skipped event of a type (a
//! confirmation page first).

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;
use plugipay_webhook_dispatch::inbox::{Count, ListFilter, RetryFilter, State};

use super::{message, no_retries, unavailable};
use crate::components::{csrf_field, hidden};
use crate::form::{self, encode, query};
use crate::reply::{html_response, redirect};
use crate::request::Req;
use crate::state::Console;

pub(crate) async fn retry_one(c: &Console, id: &str, f: &[(String, String)]) -> Response<Bytes> {
    let (ty, tenant) = (form::get(f, "type"), form::get(f, "tenant"));
    let filter = RetryFilter {
        id: Some(id.to_owned()),
        dead: true,
        skipped: true,
        stale: true,
        event_type: ty.map(str::to_owned),
        // An empty tenant field is the event without one.
        tenant: Some(tenant.unwrap_or("").to_owned()),
        ..Default::default()
    };
    // Whether it was stale: retried, it may well be stale again.
    let was_stale = match c.inbox().get(id).await {
        Ok(records) => records.iter().any(|r| {
            r.state == State::Stale
                && ty.is_none_or(|t| t == r.event_type)
                && r.tenant == tenant.unwrap_or("")
        }),
        Err(e) => return unavailable(c, &e),
    };
    match c.inbox().retry(&filter).await {
        Ok(n) => {
            let notice = match (n > 0, was_stale) {
                (true, true) => "retried_stale",
                (true, false) => "retried",
                (false, _) => "unchanged",
            };
            redirect(&format!(
                "{}/events/{}{}",
                c.base(),
                encode(id),
                query(&[("type", ty), ("tenant", tenant), ("notice", Some(notice))])
            ))
        }
        Err(e) => unavailable(c, &e),
    }
}

/// Which bulk retry a request asks for: `(state, type, tenant)`.
fn bulk<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<(State, &'a str, Option<&'a str>)> {
    let state = match get("state")? {
        "dead" => State::Dead,
        "skipped" => State::Skipped,
        _ => return None,
    };
    Some((state, get("type")?, get("tenant")))
}

pub(crate) async fn confirm_retry(c: &Console, req: &Req) -> Response<Bytes> {
    let Some((state, ty, tenant)) = bulk(|k| req.q(k)) else {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Which events?",
            "Retry takes state=dead or state=skipped and a type.",
        );
    };
    if !c.can_retry() {
        return no_retries(c);
    }
    let filter = ListFilter {
        state: Some(state),
        event_type: Some(ty.to_owned()),
        tenant: tenant.map(str::to_owned),
        ..Default::default()
    };
    let (count, found) = match c.inbox().count(&filter, 1000).await {
        Ok(Count::Exactly(n)) => (n.to_string(), n),
        Ok(Count::AtLeast(n)) if n > 1000 => ("more than 1,000".to_owned(), n),
        Ok(Count::AtLeast(n)) => (format!("at least {n}"), n),
        Err(e) => return unavailable(c, &e),
    };
    let plural = if found == 1 { "" } else { "s" };
    let base = c.base();
    let back = query(&[
        ("state", Some(state.as_str())),
        ("type", Some(ty)),
        ("tenant", tenant),
    ]);
    let body = html! {
        h1 {
            "Retry " (count) " " (state.as_str()) " event" (plural) " of type " (ty)
            @if let Some(t) = tenant { " for tenant " (t) }
            "?"
        }
        p {
            "Each becomes pending again with its attempts reset, and the workers run it: \
             its handlers that have not succeeded run again."
        }
        form method="post" action={ (base) "/retry" } class="action" {
            (csrf_field(c.csrf()))
            (hidden("state", state.as_str()))
            (hidden("type", ty))
            @if let Some(t) = tenant { (hidden("tenant", t)) }
            (hidden("confirm", "yes"))
            button type="submit" { "Retry " (count) " event" (plural) }
            " "
            a href={ (base) "/events" (back) } { "Cancel" }
        }
    };
    html_response(StatusCode::OK, c.frame("Retry", "events").page(body))
}

pub(crate) async fn retry_many(c: &Console, f: &[(String, String)]) -> Response<Bytes> {
    let Some((state, ty, tenant)) = bulk(|k| form::get(f, k)) else {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Which events?",
            "Retry takes state=dead or state=skipped and a type.",
        );
    };
    if form::get(f, "confirm") != Some("yes") {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Not confirmed",
            "A retry of many events is confirmed on its own page first.",
        );
    }
    let filter = RetryFilter {
        dead: state == State::Dead,
        skipped: state == State::Skipped,
        event_type: Some(ty.to_owned()),
        tenant: tenant.map(str::to_owned),
        ..Default::default()
    };
    match c.inbox().retry(&filter).await {
        Ok(n) => redirect(&format!(
            "{}/events{}",
            c.base(),
            query(&[
                ("type", Some(ty)),
                ("tenant", tenant),
                ("retried", Some(&n.to_string()))
            ])
        )),
        Err(e) => unavailable(c, &e),
    }
}
